// source-app's worker process: takes a job every WORKER_INTERVAL seconds (default 2) and logs it.
const seconds = Number(process.env.WORKER_INTERVAL || 2);
let job = 0;
console.log(`source-app worker started, a job every ${seconds}s`);
setInterval(() => console.log(`source-app worker: job ${++job} done`), seconds * 1000);
