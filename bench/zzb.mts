import { bundle } from "./bundle.js"
const bare = await bundle("./bundle/bare.ts"), client = await bundle("./bundle/client.ts"), modules = await bundle("./bundle/clientModules.ts")
console.log("entry", client.gzip - bare.gzip, "modules", modules.gzip - bare.gzip)
