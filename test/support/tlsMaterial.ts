/**
 * A private CA and a server certificate for 127.0.0.1, made with openssl when a test file runs
 * (no key material is committed). `hasOpenssl` tells whether it can be made here.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { peer } from "./peers.js"

export const OPENSSL = "/usr/bin/openssl"

export const hasOpenssl = peer(existsSync(OPENSSL), "openssl", "openssl")

export interface Material {
  /** The CA certificate's file, and its PEM text. */
  readonly caFile: string
  readonly caCert: string
  readonly serverCert: string
  readonly serverKey: string
}

/** Writes the CA and the server's key and certificate into `dir` and reads them back. */
export const makeMaterial = (dir: string, caName = "lifeline test CA"): Material => {
  const openssl = (...args: Array<string>) => execFileSync(OPENSSL, args, { cwd: dir, stdio: "pipe", timeout: 10_000 })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    `/CN=${caName}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign"
  )
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
  writeFileSync(
    join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
  )
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-set_serial",
    "1",
    "-days",
    "2",
    "-extfile",
    "server.ext",
    "-out",
    "server.pem"
  )
  const read = (name: string) => readFileSync(join(dir, name), "utf8")
  return {
    caFile: join(dir, "ca.pem"),
    caCert: read("ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key")
  }
}

export const noMaterial: Material = { caFile: "", caCert: "", serverCert: "", serverKey: "" }

/** A certificate and its key, as files in a material directory and as PEM text. */
export interface Issued {
  readonly certFile: string
  readonly keyFile: string
  readonly cert: string
  readonly key: string
}

/** What `issue` puts in a certificate besides its subject. */
export interface IssueOptions {
  /** The subjectAltName line, e.g. "IP:127.0.0.1" (default) or "DNS:localhost". */
  readonly san?: string
  /** Validity as `openssl ca` takes it (YYYYMMDDHHMMSSZ); default: from an hour ago, for 2 days. */
  readonly startdate?: string
  readonly enddate?: string
  /** A CA certificate (an intermediate when `issuer` is given); else a leaf for server and client use. */
  readonly ca?: boolean
}

const stamp = (date: Date) => `${date.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`

/**
 * Issues a certificate for `/CN=${name}` into `dir` (files `${name}.pem` and `${name}.key`, the name
 * made file-safe), signed by `issuer`, or self-signed when `issuer` is undefined. Dates that are
 * in the past or the future are set with `openssl ca -startdate/-enddate` (no faketime needed).
 */
export const issue = (dir: string, name: string, issuer: Issued | undefined, options: IssueOptions = {}): Issued => {
  const base = name.replace(/[^A-Za-z0-9.-]/g, "_")
  const work = join(dir, `${base}.d`)
  mkdirSync(work, { recursive: true })
  const openssl = (...args: Array<string>) => execFileSync(OPENSSL, args, { cwd: work, stdio: "pipe", timeout: 10_000 })
  const keyFile = join(dir, `${base}.key`)
  const certFile = join(dir, `${base}.pem`)
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", keyFile)
  openssl("req", "-new", "-key", keyFile, "-subj", `/CN=${name}`, "-out", "req.csr")
  const extensions = options.ca === true
    ? "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    : `subjectAltName=${options.san ?? "IP:127.0.0.1"}\nbasicConstraints=CA:FALSE\n` +
      "extendedKeyUsage=serverAuth,clientAuth\n"
  writeFileSync(join(work, "ext.cnf"), `[ext]\n${extensions}`)
  writeFileSync(join(work, "index.txt"), "")
  writeFileSync(
    join(work, "ca.cnf"),
    "[ca]\ndefault_ca=own\n[own]\ndir=.\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n" +
      "default_md=sha256\npolicy=any\nunique_subject=no\nemail_in_dn=no\n[any]\ncommonName=supplied\n"
  )
  writeFileSync(join(work, "serial"), `${(Date.now() % 0xffffff).toString(16).padStart(6, "0")}01\n`)
  const now = Date.now()
  openssl(
    "ca",
    "-batch",
    "-notext",
    "-config",
    "ca.cnf",
    ...(issuer === undefined
      ? ["-selfsign", "-keyfile", keyFile]
      : ["-cert", issuer.certFile, "-keyfile", issuer.keyFile]),
    "-startdate",
    options.startdate ?? stamp(new Date(now - 3_600_000)),
    "-enddate",
    options.enddate ?? stamp(new Date(now + 2 * 86_400_000)),
    "-extfile",
    "ext.cnf",
    "-extensions",
    "ext",
    "-in",
    "req.csr",
    "-out",
    certFile
  )
  rmSync(work, { recursive: true, force: true })
  return { certFile, keyFile, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") }
}

/** `issued`'s key encrypted with `passphrase` (PKCS#8, "ENCRYPTED PRIVATE KEY"), as PEM text. */
export const encryptedKey = (issued: Issued, passphrase: string): string =>
  execFileSync(OPENSSL, ["pkey", "-in", issued.keyFile, "-aes256", "-passout", `pass:${passphrase}`], {
    stdio: "pipe",
    timeout: 10_000,
    encoding: "utf8"
  })
