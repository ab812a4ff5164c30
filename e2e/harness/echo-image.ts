// The echo image the real-node e2e files run: the one `npm start` runs too (operator/local/echo-image.ts).
export { buildEchoImage } from "../../operator/local/echo-image.js";
