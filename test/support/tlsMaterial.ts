/**
 * A private CA and a server certificate for 127.0.0.1, made with openssl when a test file runs
 * (no key material is committed). `hasOpenssl` tells whether it can be made here.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

export const OPENSSL = "/usr/bin/openssl"

export const hasOpenssl = existsSync(OPENSSL)

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
