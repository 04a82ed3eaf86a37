/**
 * The test kit: a real `ws` server on 127.0.0.1 with scripted faults (`TestServer`) and a TCP proxy
 * that cuts, stalls and throttles the link (`FaultProxy`).
 *
 * @module effect-lifeline/testing
 * @since 0.1.0
 */
export * as FaultProxy from "./FaultProxy.js"
export * as TestServer from "./TestServer.js"
