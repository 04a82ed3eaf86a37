// Renders the rows as one plain-text table: one block per measurement, the baseline first.
import type { Row } from "./results.js"

const LABELS: Record<Row["contender"], string> = {
  ws: "ws (raw)",
  partysocket: "partysocket",
  partysocketJittered: "partysocket, jittered",
  platform: "@effect/platform Socket",
  connection: "lifeline Connection",
  client: "lifeline Client",
  lite: "lifeline LiteClient"
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

/** A row's figures, the same in both tables: median, min, max, ratio, 90 % interval, runs and note. */
const figures = (row: Row): Array<string> => [
  formatNumber(row.summary.median),
  formatNumber(row.summary.min),
  formatNumber(row.summary.max),
  formatRatio(row),
  formatInterval(row),
  `${row.summary.runs.length}${row.note === undefined ? "" : ` ${row.note}`}`
]

/** The printed table: a heading line per measurement, then a line per contender, at most `width` columns. */
export const renderTable = (rows: ReadonlyArray<Row>, width = 120): string => {
  const header = ["contender", "median", "min", "max", "ratio", "90 %", "runs"]
  const lines: Array<Array<string> | string> = []
  let previous: string | undefined
  for (const row of rows) {
    if (previous !== row.measurement) {
      if (previous !== undefined) lines.push("")
      const versus = row.baseline === "ws" ? "" : `; ratio to ${LABELS[row.baseline]}`
      lines.push(`${row.measurement}, ${row.unit} (${row.better} is better)${versus}`)
    }
    previous = row.measurement
    lines.push([LABELS[row.contender], ...figures(row)])
  }
  const cells = lines.filter((line): line is Array<string> => Array.isArray(line))
  // Every column but the last (runs and notes) as wide as its widest cell.
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)))
  const numeric = new Set([1, 2, 3, 4])
  const cut = (text: string): string => text.length <= width ? text : `${text.slice(0, width - 1)}…`
  const format = (line: ReadonlyArray<string>): string =>
    cut(
      line.map((cell, column) => column === line.length - 1 ? cell : pad(cell, widths[column]!, numeric.has(column)))
        .join("  ").trimEnd()
    )
  const rule = cut(widths.map((w) => "-".repeat(w)).join("  "))
  return [format(header), rule, ...lines.map((line) => (typeof line === "string" ? cut(line) : format(line)))].join(
    "\n"
  )
}

/** The full table as Markdown, every column and note whole: written beside the JSON. */
export const renderMarkdown = (rows: ReadonlyArray<Row>): string => {
  const header = ["measurement", "unit", "contender", "median", "min", "max", "vs", "ratio", "90 %", "runs"]
  const body = rows.map((row) => {
    const [median, min, max, ...rest] = figures(row)
    const vs = row.contender === row.baseline ? "" : row.baseline
    return [
      row.measurement,
      `${row.unit} (${row.better} is better)`,
      LABELS[row.contender],
      median!,
      min!,
      max!,
      vs,
      ...rest
    ]
  })
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((cell) => cell.replace(/\|/g, "\\|")).join(" | ")} |`
  return [line(header), line(header.map(() => "---")), ...body.map(line)].join("\n")
}
