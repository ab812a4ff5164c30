// source-app's web process: answers every request with $MESSAGE (its Config), on $PORT (Slipway sets it).
const http = require("node:http");
const message = process.env.MESSAGE || "hello from source-app";
http.createServer((req, res) => {
  console.log(`${req.method} ${req.url}`);
  res.end(`${message}\n`);
}).listen(Number(process.env.PORT || 8080), () => console.log(`source-app listening on ${process.env.PORT || 8080}`));
