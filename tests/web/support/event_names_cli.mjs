// For tests/web/test_event_names_agree.py: the browser rule's side of the agreement test.
//   node event_names_cli.mjs variants  → JSON list of every single-code-point substitution of a
//                                        reserved name that some locale's casing maps onto it
//   node event_names_cli.mjs classify  → reads a JSON list of names on stdin, writes
//                                        [[fold, reservedFor], ...] for them
import { HOST_ONLY_PREFIXES, SERVER_ONLY, foldEventName, reservedFor } from "../../../src/onair/web/static/client/event_names.js";
import { caseVariants, substitutions } from "./case_variants.mjs";

const mode = process.argv[2];
if (mode === "variants") {
  const reserved = [...SERVER_ONLY, ...HOST_ONLY_PREFIXES];
  const variants = caseVariants([...new Set(reserved.join(""))].join(""));
  process.stdout.write(JSON.stringify(substitutions(reserved, variants).map(({ variant }) => variant)));
} else if (mode === "classify") {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const names = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  process.stdout.write(JSON.stringify(names.map((n) => [foldEventName(n), reservedFor(n)])));
} else {
  process.stderr.write("usage: event_names_cli.mjs variants|classify\n");
  process.exit(2);
}
