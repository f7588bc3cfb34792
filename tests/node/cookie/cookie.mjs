// Runs the real Remix / React Router createCookie on a batch of cases read as JSON from stdin
// and prints the results as JSON. Used by tests/test_cookie_interop.py.
import { createCookie as remixCookie } from "@remix-run/node";
import { createCookie as rr7Cookie } from "react-router-7";
import { createCookie as rr8Cookie } from "react-router-8";

const libraries = { remix: remixCookie, "react-router-7": rr7Cookie, "react-router-8": rr8Cookie };

function options(raw) {
  const result = { ...raw };
  for (const key of Object.keys(result)) if (result[key] === null) result[key] = undefined;
  if (result.expires) result.expires = new Date(result.expires);
  return result;
}

async function run(item) {
  const cookie = libraries[item.lib](item.name, options(item.options || {}));
  if (item.op === "serialize") return await cookie.serialize(item.value, options(item.overrides || {}));
  if (item.op === "parse") {
    try {
      return { value: await cookie.parse(item.header) };
    } catch (error) {
      return { error: String(error) };
    }
  }
  throw new Error(`unknown op ${item.op}`);
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const item of JSON.parse(input)) results.push(await run(item));
process.stdout.write(JSON.stringify(results));
