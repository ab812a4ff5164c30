import test from "ava";
import { describeLeftovers, overlappingRoutes, parseCidr } from "./realnode.js";
import { tarball } from "./images.js";

test("parseCidr gives the prefix and the n-th address of the network", (t) => {
  const n = parseCidr("10.88.0.0/16");
  t.is(n.prefix, 16);
  t.is(n.host(1), "10.88.0.1");
  t.is(n.host(300), "10.88.1.44");
  t.is(parseCidr("192.168.7.9/24").host(1), "192.168.7.1");
  t.throws(() => n.host(65535), { message: /no host number/ });
  t.throws(() => parseCidr("10.88.0.0"), { message: /not an IPv4 CIDR/ });
  t.throws(() => parseCidr("300.1.1.1/16"), { message: /not an IPv4 CIDR/ });
});

test("describeLeftovers names each kind of leftover, and is empty when nothing is left", (t) => {
  t.is(describeLeftovers({ mounts: [], cgroups: [], links: [], processes: [] }), "");
  t.is(describeLeftovers({ mounts: ["/tmp/x/shm"], cgroups: [], links: ["slipway0"], processes: [] }), "mounts /tmp/x/shm; links slipway0");
});

/** The entries of a ustar archive: name, type, mode, size and content. */
function entries(tar: Buffer): Array<{ name: string; type: string; mode: number; content: string }> {
  const out = [];
  let off = 0;
  while (off + 512 <= tar.length && tar[off] !== 0) {
    const h = tar.subarray(off, off + 512);
    const field = (o: number, l: number) => h.subarray(o, o + l).toString("utf8").replace(/\0.*$/s, "");
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
    if (sum !== parseInt(field(148, 8), 8)) throw new Error(`bad checksum at ${off}`);
    const prefix = field(345, 155);
    const size = parseInt(field(124, 12), 8);
    out.push({
      name: prefix ? `${prefix}/${field(0, 100)}` : field(0, 100), type: field(156, 1), mode: parseInt(field(100, 8), 8),
      content: tar.subarray(off + 512, off + 512 + size).toString("utf8"),
    });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

test("tarball writes a ustar layer with parent directories, modes and contents, and the same bytes each time", async (t) => {
  const files = [
    { path: "/bin/hello", source: { content: "#!hello" }, mode: 0o755 },
    { path: "/etc/app/config", source: { content: "x=1\n" } },
    { path: `/deep/${"d".repeat(90)}/${"f".repeat(60)}`, source: { content: "" } },
  ];
  const tar = await tarball(files);
  t.is(tar.length % 512, 0);
  t.deepEqual(entries(tar).map((e) => [e.name, e.type, e.mode.toString(8), e.content]), [
    ["bin/", "5", "755", ""],
    ["bin/hello", "0", "755", "#!hello"],
    ["etc/", "5", "755", ""],
    ["etc/app/", "5", "755", ""],
    ["etc/app/config", "0", "644", "x=1\n"],
    ["deep/", "5", "755", ""],
    [`deep/${"d".repeat(90)}/`, "5", "755", ""],
    [`deep/${"d".repeat(90)}/${"f".repeat(60)}`, "0", "644", ""],
  ]);
  t.deepEqual(await tarball(files), tar);
  await t.throwsAsync(tarball([{ path: "relative", source: { content: "" } }]), { message: /must be absolute/ });
});

test("overlappingRoutes finds the routes of /proc/net/route that overlap the pod network, but not the default route or the node's bridge", (t) => {
  const table = [
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
    "slipway0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0",
    "cni0\t0001580A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
    "wide\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0",
    "",
  ].join("\n");
  t.deepEqual(overlappingRoutes(table, "10.88.0.0/16", "slipway0"), ["cni0 10.88.1.0/24", "wide 10.0.0.0/8"]);
  t.deepEqual(overlappingRoutes(table, "10.89.0.0/16", "slipway0"), ["wide 10.0.0.0/8"]);
  t.deepEqual(overlappingRoutes(table, "192.0.2.128/25", "slipway0"), ["eth0 192.0.2.0/24"]);
  t.deepEqual(overlappingRoutes(table, "172.30.0.0/16", "slipway0"), []);
});
