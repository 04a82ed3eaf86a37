export * as TestServer from "./TestServer.js"
export * as FaultProxy from "./FaultProxy.js"
