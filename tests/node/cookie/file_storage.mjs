// Runs the real Remix createFileSessionStorage on a batch of cases read as JSON from stdin and
// prints the results as JSON. Used by tests/stores/test_file_remix.py.
import { createCookie, createFileSessionStorage } from "@remix-run/node";

async function run(item) {
  const cookie = createCookie("__session", { secrets: item.secrets, maxAge: 3600 });
  const storage = createFileSessionStorage({ cookie, dir: item.dir });
  const session = await storage.getSession(item.header ?? null);
  for (const [key, value] of Object.entries(item.set ?? {})) session.set(key, value);
  for (const [key, value] of Object.entries(item.flash ?? {})) session.flash(key, value);
  const data = { ...session.data };
  const read = Object.fromEntries((item.get ?? []).map((key) => [key, session.get(key) ?? null]));
  const setCookie = item.commit ? await storage.commitSession(session) : null;
  return { id: session.id, data, read, setCookie };
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const item of JSON.parse(input)) results.push(await run(item));
process.stdout.write(JSON.stringify(results));
