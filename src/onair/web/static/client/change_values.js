// Values of a postgres_changes record may arrive as native JSON or in Postgres text form ("7",
// "t", '{"a":1}'); like realtime-js (`convertChangeData`, spec §6.2) we convert by the column types
// the message lists, so `seq` is a number whichever way the server chose.

const NUMBER_TYPES = new Set(["int2", "int4", "int8", "float4", "float8", "numeric", "oid"]);
const BOOL_TYPES = new Set(["bool"]);
const JSON_TYPES = new Set(["json", "jsonb"]);

export function convertValue(type, value) {
  if (typeof value !== "string") return value;
  if (NUMBER_TYPES.has(type)) {
    const n = Number(value);
    return value.trim() !== "" && Number.isFinite(n) ? n : value;
  }
  if (BOOL_TYPES.has(type)) {
    if (value === "t" || value === "true") return true;
    if (value === "f" || value === "false") return false;
    return value;
  }
  if (JSON_TYPES.has(type)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

/** A copy of `record` with each listed column's value converted by its type. */
export function convertRecord(columns, record) {
  if (!record || typeof record !== "object") return record ?? {};
  if (!Array.isArray(columns) || columns.length === 0) return { ...record };
  const out = { ...record };
  for (const column of columns) {
    if (column && typeof column.name === "string" && column.name in out) out[column.name] = convertValue(column.type, out[column.name]);
  }
  return out;
}
