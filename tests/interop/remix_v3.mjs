// One request through the real Remix 3 session stack, driven by tests/interop/test_remix_v3.py.
//
// Reads a JSON spec on stdin and prints a JSON result, doing what @remix-run/session-middleware
// does around a request: parse the cookie, read the session from Redis, apply the spec's
// changes, save, and serialize the Set-Cookie header.
//
//   spec: { op: "request", url, prefix, ttl, cookie: {name, ...options}, header,
//           get: [keys], set: {k: v}, unset: [keys], flash: {k: v}, destroy: bool }
//       | { op: "serialize", cookie: {name, ...options}, value }
//   result: { found, id, got: {k: v}, has: {k: bool}, setCookie }   |   { setCookie }
import { createCookie } from '@remix-run/cookie'
import { createRedisSessionStorage } from '@remix-run/session-storage-redis'
import { createClient } from 'redis'

async function readStdin() {
  let chunks = []
  for await (let chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

function makeCookie({ name, expires, ...options }) {
  return createCookie(name, { ...options, ...(expires ? { expires: new Date(expires) } : {}) })
}

async function request(spec) {
  let cookie = makeCookie(spec.cookie)
  let client = createClient({ url: spec.url })
  await client.connect()
  try {
    let storage = createRedisSessionStorage(client, { keyPrefix: spec.prefix, ttl: spec.ttl })
    let cookieValue = await cookie.parse(spec.header ?? null)
    let session = await storage.read(cookieValue)
    let found = cookieValue != null && cookieValue !== '' && session.id === cookieValue
    let got = {}
    let has = {}
    for (let key of spec.get ?? []) {
      has[key] = session.has(key)
      got[key] = session.get(key) ?? null
    }
    for (let [key, value] of Object.entries(spec.set ?? {})) session.set(key, value)
    for (let key of spec.unset ?? []) session.unset(key)
    for (let [key, value] of Object.entries(spec.flash ?? {})) session.flash(key, value)
    if (spec.destroy) session.destroy()
    let setCookieValue = await storage.save(session)
    let setCookie = setCookieValue == null ? null : await cookie.serialize(setCookieValue)
    return { found, id: session.destroyed ? null : session.id, got, has, setCookie }
  } finally {
    await client.close()
  }
}

let spec = await readStdin()
let result =
  spec.op === 'serialize'
    ? { setCookie: await makeCookie(spec.cookie).serialize(spec.value) }
    : await request(spec)
process.stdout.write(JSON.stringify(result))
