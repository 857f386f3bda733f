// Every single code point that some client's casing turns into a character of a reserved event
// name: x.toLowerCase(), x.toLocaleLowerCase(loc) in every locale whose rules differ (Turkish and
// Azeri dotted/dotless i, Lithuanian dots) and the upper-case twins, also with combining marks
// dropped from the result. Enumerates all of Unicode (0..0x10FFFF).
//
// Casing one code point at a time costs ~2 s per locale; casing them all in one string, each
// between two U+0001 (a control character: not cased, not case-ignorable, combining class 0, so
// it ends every context rule — final sigma, "after I", "more above"), gives the same per-code-point
// results in ~50 ms (the node test checks that equivalence on a sample).

export const LOCALES = [undefined, "tr", "az", "lt", "en"];
export const CASINGS = [
  ["toLowerCase", (s) => s.toLowerCase()],
  ["toUpperCase", (s) => s.toUpperCase()],
  ...LOCALES.flatMap((loc) => [
    [`toLocaleLowerCase(${loc})`, (s) => s.toLocaleLowerCase(loc)],
    [`toLocaleUpperCase(${loc})`, (s) => s.toLocaleUpperCase(loc)],
  ]),
];

const SEP = "\u0001";
const MARKS = /\p{M}/gu;

/** All code points but the separator, joined, each between two separators. */
export function allCodePoints() {
  const chars = [];
  for (let cp = 0; cp <= 0x10ffff; cp += 1) if (cp !== 1) chars.push(String.fromCodePoint(cp));
  return { chars, joined: SEP + chars.join(SEP) + SEP };
}

/** Calls visit(i, start, end) for each piece cased[start:end] = casing(chars[i]). */
export function scan(cased, count, visit) {
  let index = -1;
  let start = 0;
  for (let pos = 0; pos < cased.length; pos += 1) {
    if (cased.charCodeAt(pos) !== 1) continue;
    if (index >= 0) visit(index, start, pos);
    index += 1;
    start = pos + 1;
  }
  if (index !== count) throw new Error(`a casing swallowed separators: ${index} pieces, ${count} code points`);
}

/** Map from each character of `alphabet` (lowercase ASCII) to the code points that fold onto it. */
export function caseVariants(alphabet, all = allCodePoints()) {
  const wanted = new Map();
  for (const c of alphabet) {
    wanted.set(c, c);
    wanted.set(c.toUpperCase(), c);
  }
  const variants = new Map([...alphabet].map((c) => [c, new Set()]));
  for (const [, casing] of CASINGS) {
    const cased = casing(all.joined);
    for (const text of [cased, cased.normalize("NFD").replace(MARKS, "")]) {
      scan(text, all.chars.length, (i, start, end) => {
        // one ASCII character is at most 4 units long before marks are dropped
        const c = end - start <= 4 ? wanted.get(text.slice(start, end)) : undefined;
        if (c !== undefined) variants.get(c).add(all.chars[i]);
      });
    }
  }
  return variants;
}

/** Every name made by replacing one character of a reserved name (or prefix) by a variant. */
export function substitutions(names, variants) {
  const out = [];
  for (const name of names) {
    [...name].forEach((c, i) => {
      for (const x of variants.get(c) ?? []) {
        if (x !== c) out.push({ name, variant: name.slice(0, i) + x + name.slice(i + 1) });
      }
    });
  }
  return out;
}
