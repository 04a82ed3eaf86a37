// 5. Thundering herd: many reconnecting clients, the server killed and back 1 s later.
import { fileURLToPath } from "node:url"
import type { HerdReport } from "./herdChild.js"
import type { Row, RowContender } from "./results.js"
import { JsonLines, killChild, spawnTs } from "./server.js"
import { summarize } from "./util.js"

const CHILD = fileURLToPath(new URL("./herdChild.ts", import.meta.url))

export interface HerdSettings {
  readonly runs: number
  readonly clients: number
  /** How long to wait for reconnections after the server is back. */
  readonly waitMs: number
  readonly log: (line: string) => void
}

// partysocket as installed (every socket waits the same 3 s: one burst), lifeline's Client, and
// partysocket with a delay drawn per socket (a herd spread as lifeline's: see `partysocketHerd`),
// so that the reconnect CPU is also compared between herds of the same shape.
const HERD: ReadonlyArray<RowContender> = ["partysocket", "client", "partysocketJittered"]

const runChild = async (name: RowContender, settings: HerdSettings): Promise<HerdReport> => {
  const child = spawnTs(CHILD, [name, String(settings.clients), String(settings.waitMs)])
  try {
    const report = await new JsonLines(child).next<HerdReport>(settings.waitMs + 90_000, `${name} herd`)
    // JSON has no NaN: a median of nothing arrives as null.
    const number = (value: number | null): number => value ?? Number.NaN
    return {
      ...report,
      peakShare: number(report.peakShare),
      medianMs: number(report.medianMs),
      clientMedianMs: number(report.clientMedianMs),
      clientPeakShare: number(report.clientPeakShare),
      lastMs: number(report.lastMs),
      cpuMsPerClient: number(report.cpuMsPerClient),
      cpuMsPerClientFromKill: number(report.cpuMsPerClientFromKill)
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const none = Number.NaN
    return {
      clients: settings.clients,
      reconnected: 0,
      peakShare: none,
      medianMs: none,
      clientMedianMs: none,
      clientPeakShare: none,
      lastMs: none,
      cpuMsPerClient: none,
      cpuMsPerClientFromKill: none,
      error: message
    }
  } finally {
    await killChild(child)
  }
}

export const measureHerd = async (
  settings: HerdSettings
): Promise<{ rows: Array<Omit<Row, "ratio">>; reports: Record<string, Array<HerdReport>> }> => {
  const reports: Record<string, Array<HerdReport>> = Object.fromEntries(HERD.map((name) => [name, []]))
  for (let run = 0; run < settings.runs; run++) {
    for (let turn = 0; turn < HERD.length; turn++) {
      const name = HERD[(run + turn) % HERD.length]!
      const report = await runChild(name, settings)
      reports[name]!.push(report)
      settings.log(
        `herd ${name} run ${run + 1}: ${report.reconnected}/${report.clients} back; server: peak ${
          (report.peakShare * 100).toFixed(1)
        }% in 100 ms, median ${report.medianMs.toFixed(0)} ms; clients: median open ${
          report.clientMedianMs.toFixed(0)
        } ms, peak ${(report.clientPeakShare * 100).toFixed(1)}%; CPU per client ${
          report.cpuMsPerClient.toFixed(2)
        } ms from the return, ${report.cpuMsPerClientFromKill.toFixed(2)} ms from the kill${
          report.error === undefined ? "" : `, error: ${report.error}`
        }`
      )
    }
  }
  const rows: Array<Omit<Row, "ratio">> = []
  const measures = [
    [
      "herd: peak share of handshakes the server accepts in one 100 ms window",
      "%",
      (report: HerdReport) => report.peakShare * 100
    ],
    [
      "herd: median time from server return to the server accepting a handshake",
      "ms",
      (report: HerdReport) => report.medianMs
    ],
    [
      "herd: median time from server return to the client reporting open",
      "ms",
      (report: HerdReport) => report.clientMedianMs
    ],
    [
      "herd: reconnect CPU per client, client process, from server return until every client is back",
      "ms",
      (report: HerdReport) => report.cpuMsPerClient,
      true
    ],
    [
      "herd: reconnect CPU per client, client process, from the kill until every client is back",
      "ms",
      (report: HerdReport) => report.cpuMsPerClientFromKill,
      true
    ]
  ] as const
  // Each measure against partysocket as installed; the CPU ones also lifeline's against the jittered
  // partysocket, a herd of the same shape (a row of their own, since a row has one baseline).
  const blocks = measures.flatMap(([measurement, unit, pick, alsoJittered]) => [
    { measurement, unit, pick, names: HERD, baseline: "partysocket" as const },
    ...(alsoJittered === true
      ? [{
        measurement: `${measurement}, against a herd of the same shape`,
        unit,
        pick,
        names: ["partysocketJittered", "client"] as ReadonlyArray<RowContender>,
        baseline: "partysocketJittered" as const
      }]
      : [])
  ])
  for (const { baseline, measurement, names, pick, unit } of blocks) {
    for (const name of names) {
      const valid = reports[name]!.filter((report) => report.error === undefined)
      const incomplete = valid.filter((report) => report.reconnected < report.clients).length
      const failed = reports[name]!.length - valid.length
      const notes = [
        ...(failed > 0 ? [`${failed} failed`] : []),
        ...(incomplete > 0 ? [`${incomplete} with clients not back in time`] : [])
      ]
      rows.push({
        measurement: `${measurement} (${settings.clients} clients)`,
        unit,
        better: "lower",
        contender: name,
        summary: summarize(valid.map(pick)),
        baseline,
        ...(notes.length === 0 ? {} : { note: `(${notes.join(", ")})` })
      })
    }
  }
  return { rows, reports }
}
