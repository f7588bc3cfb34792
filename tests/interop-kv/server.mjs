// A local server for the subset of Cloudflare's Workers KV REST API that websession uses,
// backed by Miniflare's KV implementation (the one `wrangler dev` runs), so expiry rules,
// metadata and size limits are KV's own and not a re-implementation.
//
//   GET    /client/v4/accounts/:account/storage/kv/namespaces/:ns/values/:key    raw value; `expiration` header
//   PUT    .../values/:key?expiration=&expiration_ttl=   raw body, or multipart `value` + `metadata`
//   DELETE .../values/:key
//   GET    .../metadata/:key                               {"result": metadata}
//   GET    .../keys?prefix=&limit=&cursor=                 {"result": [{name, expiration, metadata}], "result_info"}
//   PUT    .../bulk    JSON [{key, value, base64?, expiration?, expiration_ttl?, metadata?}], at most 10,000
//
// Usage: KV_ACCOUNT_ID=acc KV_NAMESPACE_ID=ns KV_API_TOKEN=tok node server.mjs [port]
// Prints "listening <port>" once ready. Errors use Cloudflare's envelope:
// {"success": false, "errors": [{"code": ..., "message": ...}], "messages": [], "result": null}.
// HTTP statuses and messages are Miniflare's; the numeric error codes are approximations.

import http from "node:http";
import { Miniflare } from "miniflare";

const ACCOUNT = process.env.KV_ACCOUNT_ID ?? "test-account";
const NAMESPACE = process.env.KV_NAMESPACE_ID ?? "test-namespace";
const TOKEN = process.env.KV_API_TOKEN ?? "test-token";
const PORT = Number(process.argv[2] ?? 0);

const mf = new Miniflare({
  modules: true,
  script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
  kvNamespaces: { NS: NAMESPACE },
  kvPersist: false,
});
const kv = await mf.getKVNamespace("NS");

const ROUTE = /^\/client\/v4\/accounts\/([^/]+)\/storage\/kv\/namespaces\/([^/]+)\/(values|metadata|keys|bulk)(?:\/(.+))?$/;

function reply(res, status, body, headers = {}) {
  const payload = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(payload);
}

function ok(res, result = null, extra = {}) {
  reply(res, 200, { success: true, errors: [], messages: [], result, ...extra });
}

function fail(res, status, code, message) {
  reply(res, status, { success: false, errors: [{ code, message }], messages: [], result: null });
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

// Miniflare's binding throws "KV PUT failed: 400 Invalid expiration ..."; keep status and text.
function fromMiniflare(res, error) {
  const match = /KV \w+ failed: (\d{3}) (.*)/s.exec(String(error?.message ?? error));
  if (match) return fail(res, Number(match[1]), 10000 + Number(match[1]), match[2]);
  return fail(res, 500, 10001, String(error?.message ?? error));
}

async function expirationOf(key) {
  // The binding does not return a key's expiration with its value; listing does.
  const listed = await kv.list({ prefix: key, limit: 1 });
  const entry = listed.keys[0];
  return entry && entry.name === key ? entry.expiration : undefined;
}

async function handle(req, res) {
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    return fail(res, 403, 10000, "Authentication error");
  }
  const url = new URL(req.url, "http://localhost");
  const route = ROUTE.exec(url.pathname);
  if (!route) return fail(res, 404, 7003, "Could not route to " + url.pathname);
  const [, account, namespace, kind, rawKey] = route;
  if (account !== ACCOUNT || namespace !== NAMESPACE) {
    return fail(res, 404, 10013, "namespace not found");
  }
  const key = rawKey === undefined ? undefined : decodeURIComponent(rawKey);

  if (kind === "keys" && req.method === "GET") {
    const listed = await kv.list({
      prefix: url.searchParams.get("prefix") ?? undefined,
      limit: Number(url.searchParams.get("limit") ?? 1000),
      cursor: url.searchParams.get("cursor") || undefined,
    });
    const result = listed.keys.map(({ name, expiration, metadata }) => ({ name, expiration, metadata }));
    return ok(res, result, { result_info: { count: result.length, cursor: listed.list_complete ? "" : listed.cursor } });
  }
  if (kind === "bulk" && req.method === "PUT") return bulkWrite(req, res);
  if (key === undefined) return fail(res, 404, 7003, "missing key name");

  if (kind === "metadata" && req.method === "GET") {
    const found = await kv.getWithMetadata(key, "arrayBuffer");
    if (found.value === null) return fail(res, 404, 10009, "metadata: 'key not found'");
    return ok(res, found.metadata ?? null);
  }
  if (kind !== "values") return fail(res, 405, 10000, "method not allowed");

  if (req.method === "GET") {
    const value = await kv.get(key, "arrayBuffer");
    if (value === null) return fail(res, 404, 10009, "get: 'key not found'");
    const expiration = await expirationOf(key);
    const headers = { "content-type": "application/octet-stream" };
    if (expiration !== undefined) headers.expiration = String(expiration);
    return reply(res, 200, new Uint8Array(value), headers);
  }
  if (req.method === "PUT") {
    const options = {};
    if (url.searchParams.has("expiration")) options.expiration = Number(url.searchParams.get("expiration"));
    if (url.searchParams.has("expiration_ttl")) options.expirationTtl = Number(url.searchParams.get("expiration_ttl"));
    const raw = await body(req);
    let value = new Uint8Array(raw);
    const type = req.headers["content-type"] ?? "";
    if (type.startsWith("multipart/form-data")) {
      const form = await new Response(raw, { headers: { "content-type": type } }).formData();
      const field = form.get("value");
      if (field === null) return fail(res, 400, 10047, "multipart request without a value field");
      value = typeof field === "string" ? field : new Uint8Array(await field.arrayBuffer());
      const metadata = form.get("metadata");
      if (metadata !== null) {
        try {
          options.metadata = JSON.parse(typeof metadata === "string" ? metadata : await metadata.text());
        } catch {
          return fail(res, 400, 10026, "metadata is not valid JSON");
        }
      }
    }
    try {
      await kv.put(key, value, options);
    } catch (error) {
      return fromMiniflare(res, error);
    }
    return ok(res, {});
  }
  if (req.method === "DELETE") {
    await kv.delete(key);
    return ok(res, {});
  }
  return fail(res, 405, 10000, "method not allowed");
}

// Cloudflare's bulk write. A malformed pair refuses the whole request before anything is
// written; KV's own rules (the 60-second minimum expiration) are Miniflare's, checked per put.
async function bulkWrite(req, res) {
  let pairs;
  try {
    pairs = JSON.parse((await body(req)).toString("utf8"));
  } catch {
    return fail(res, 400, 10026, "the body is not valid JSON");
  }
  if (!Array.isArray(pairs)) return fail(res, 400, 10026, "the body must be an array of key-value pairs");
  if (pairs.length > 10000) return fail(res, 400, 10026, "at most 10,000 pairs per bulk write");
  const writes = [];
  for (const pair of pairs) {
    if (typeof pair?.key !== "string" || typeof pair?.value !== "string") {
      return fail(res, 400, 10026, "each pair needs a string key and a string value");
    }
    const value = pair.base64 ? new Uint8Array(Buffer.from(pair.value, "base64")) : pair.value;
    const options = {};
    if (pair.expiration !== undefined) options.expiration = Number(pair.expiration);
    if (pair.expiration_ttl !== undefined) options.expirationTtl = Number(pair.expiration_ttl);
    if (pair.metadata !== undefined) options.metadata = pair.metadata;
    writes.push([pair.key, value, options]);
  }
  try {
    for (const [key, value, options] of writes) await kv.put(key, value, options);
  } catch (error) {
    return fromMiniflare(res, error);
  }
  return ok(res, { successful_key_count: writes.length, unsuccessful_keys: [] });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => fromMiniflare(res, error));
});

async function stop() {
  server.close();
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.listen(PORT, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
