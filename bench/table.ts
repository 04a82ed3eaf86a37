// Renders the rows as one plain-text table: one block per measurement, the baseline first.
import type { Row } from "./results.js"

const LABELS: Record<Row["contender"], string> = {
  ws: "ws (raw)",
  partysocket: "partysocket",
  platform: "@effect/platform Socket",
  connection: "lifeline Connection",
  client: "lifeline Client"
}

/** 3 significant digits, with k/M for large numbers. */
export const formatNumber = (value: number): string => {
  if (!Number.isFinite(value)) return "-"
  const magnitude = Math.abs(value)
  if (magnitude >= 1e6) return `${(value / 1e6).toPrecision(3)}M`
  if (magnitude >= 1e4) return `${(value / 1e3).toPrecision(3)}k`
  if (magnitude >= 100) return value.toFixed(0)
  return value.toPrecision(3)
}

const formatRatio = (row: Row): string =>
  !Number.isFinite(row.ratio) ? "-" : row.contender === row.baseline ? "1.00x" : `${row.ratio.toFixed(2)}x`

const formatInterval = (row: Row): string =>
  row.ratioInterval === undefined ? "" : `[${row.ratioInterval[0].toFixed(2)}..${row.ratioInterval[1].toFixed(2)}]`

const pad = (text: string, width: number, right: boolean): string => right ? text.padStart(width) : text.padEnd(width)

export const renderTable = (rows: ReadonlyArray<Row>): string => {
  const header = ["measurement", "unit", "contender", "median", "min", "max", "vs", "ratio", "90 %", "runs"]
  const body: Array<Array<string> | undefined> = []
  let previous: string | undefined
  for (const row of rows) {
    if (previous !== undefined && previous !== row.measurement) body.push(undefined)
    const first = previous !== row.measurement
    previous = row.measurement
    body.push([
      first ? row.measurement : "",
      first ? `${row.unit} (${row.better} is better)` : "",
      LABELS[row.contender],
      formatNumber(row.summary.median),
      formatNumber(row.summary.min),
      formatNumber(row.summary.max),
      row.contender === row.baseline ? "" : row.baseline,
      formatRatio(row),
      formatInterval(row),
      `${row.summary.runs.length}${row.note === undefined ? "" : ` ${row.note}`}`
    ])
  }
  const widths = header.map((title, column) =>
    Math.max(title.length, ...body.map((line) => (line === undefined ? 0 : line[column]!.length)))
  )
  const numeric = new Set([3, 4, 5, 7])
  const format = (line: ReadonlyArray<string>): string =>
    line.map((cell, column) => pad(cell, widths[column]!, numeric.has(column))).join("  ").trimEnd()
  const rule = widths.map((width) => "-".repeat(width)).join("  ")
  return [format(header), rule, ...body.map((line) => (line === undefined ? "" : format(line)))].join("\n")
}
