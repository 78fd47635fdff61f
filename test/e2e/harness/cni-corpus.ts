// A seeded generator of CNI conf dirs for the differential test against real libcni: mutations of
// real bridge/flannel/calico/cilium/multus configs covering every class of issue 9 (typed fields,
// Go's key folding and duplicates, null, nesting, number range, invalid UTF-8, version-specific
// list rules, plugin subdirectories, syntax errors) and multi-file selection order.
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: small, seedable, good enough to spread cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;

/** Plugins as real CNIs write them (trimmed to what matters for loading). */
const PLUGINS: readonly string[] = [
  '{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}]}}',
  '{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}',
  '{"type":"portmap","capabilities":{"portMappings":true},"snat":true}',
  '{"type":"calico","log_level":"info","datastore_type":"kubernetes","mtu":1440,"ipam":{"type":"calico-ipam"},"policy":{"type":"k8s"},"kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"}}',
  '{"type":"bandwidth","capabilities":{"bandwidth":true}}',
  '{"type":"cilium-cni","enable-debug":false,"log-file":"/var/run/cilium/cilium-cni.log"}',
  '{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"10.244.0.0/24"}]]},"mtu":1500}',
  '{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}',
];
const NAMES = ['cbr0', 'k8s-pod-network', 'cilium', 'kindnet', 'containerd-net', 'multus-cni-network', 'n'];
const VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** Plugin-level mutations: [class, transform of a plugin object's JSON text]. */
const PLUGIN_MUTATIONS: ReadonlyArray<[string, (plugin: string, rand: Rand) => string]> = [
  ['typed: dns not an object', (p) => withField(p, '"dns":"10.0.0.10"')],
  ['typed: dns.nameservers a string', (p) => withField(p, '"dns":{"nameservers":"10.0.0.10"}')],
  ['typed: dns ok', (p) => withField(p, '"dns":{"nameservers":["10.0.0.10"],"search":["svc"],"domain":"x"}')],
  ['typed: dns.search number', (p) => withField(p, '"dns":{"search":[1],"options":"x"}')],
  ['typed: ipam array', (p) => withField(p, '"ipam":[]')],
  ['typed: ipam.type number', (p) => withField(p, '"ipam":{"type":5}')],
  ['typed: capabilities non-bool', (p) => withField(p, '"capabilities":{"portMappings":"yes"}')],
  ['typed: capabilities array', (p) => withField(p, '"capabilities":["portMappings"]')],
  ['typed: prevResult string', (p) => withField(p, '"prevResult":"none"')],
  ['typed: prevResult ok', (p) => withField(p, '"prevResult":{"ips":[{"address":"10.0.0.2/24"}],"n":1}')],
  ['typed: plugin name number', (p) => withField(p, '"name":7')],
  ['typed: plugin cniVersion bool', (p) => withField(p, '"cniVersion":true')],
  ['typed: valid-attachments string', (p) => withField(p, '"cni.dev/valid-attachments":"x"')],
  [
    'typed: valid-attachments bad id',
    (p) => withField(p, '"cni.dev/valid-attachments":[{"containerID":1,"ifname":"eth0"}]'),
  ],
  [
    'typed: valid-attachments ok',
    (p) => withField(p, '"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]'),
  ],
  ['typed: two errors, first wins', (p) => withField(p, '"ipam":{"type":1},"dns":"x"')],
  ['go: upper-case Type', (p) => p.replace('"type"', '"Type"')],
  ['go: TYPE', (p) => p.replace('"type"', '"TYPE"')],
  ['go: long-s fold', (p) => withField(p, '"dn\u017f":{"name\u017fervers":"x"}')],
  ['go: kelvin key (no field)', (p) => withField(p, '"\u212aind":"x"')],
  ['go: duplicate type, empty last', (p) => withField(p, '"Type":""')],
  [
    'go: duplicate type, empty first',
    (p) => `{"type":"","Type":"bridge",${p.slice(1).replace(/"type":"[^"]*",?/, '')}`,
  ],
  ['go: type null keeps value', (p) => withField(p, '"type":null')],
  ['go: escaped key', (p) => p.replace('"type"', '"ty\\u0070e"')],
  ['go: number overflow unknown', (p) => withField(p, '"mtu2":1e400')],
  ['go: number overflow prevResult', (p) => withField(p, '"prevResult":{"x":-1e999}')],
  ['go: number underflow', (p) => withField(p, '"tiny":1e-400')],
  ['go: nesting 9999', (p) => withField(p, `"deep":${'['.repeat(9998)}${']'.repeat(9998)}`)],
  ['go: nesting 10001', (p) => withField(p, `"deep":${'['.repeat(10000)}${']'.repeat(10000)}`)],
  ['go: type not string', (p) => p.replace(/"type":"[^"]*"/, '"type":["bridge"]')],
  ['go: missing type', (p) => p.replace(/"type":"[^"]*",?/, '')],
  ['go: empty type', (p) => p.replace(/"type":"[^"]*"/, '"type":""')],
  ['plain', (p) => p],
];

function withField(plugin: string, field: string): string {
  return `{${field},${plugin.slice(1)}`;
}

/** List-level shapes: [class, builder from (name, version, plugins)]. */
const LIST_SHAPES: ReadonlyArray<[string, (n: string, v: string, plugins: string[], rand: Rand) => string]> =
  [
    ['list: plain', (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","plugins":[${ps.join(',')}]}`],
    ['list: no name', (_n, v, ps) => `{"cniVersion":"${v}","plugins":[${ps.join(',')}]}`],
    ['list: name number', (_n, v, ps) => `{"cniVersion":"${v}","name":5,"plugins":[${ps.join(',')}]}`],
    ['list: Name only', (n, v, ps) => `{"cniVersion":"${v}","Name":"${n}","plugins":[${ps.join(',')}]}`],
    ['list: cniVersion number', (n, _v, ps) => `{"cniVersion":1,"name":"${n}","plugins":[${ps.join(',')}]}`],
    ['list: no plugins', (n, v) => `{"cniVersion":"${v}","name":"${n}"}`],
    ['list: plugins empty', (n, v) => `{"cniVersion":"${v}","name":"${n}","plugins":[]}`],
    ['list: plugins object', (n, v) => `{"cniVersion":"${v}","name":"${n}","plugins":{}}`],
    [
      'list: plugin null',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","plugins":[${ps.join(',')},null]}`,
    ],
    ['list: plugin string', (n, v) => `{"cniVersion":"${v}","name":"${n}","plugins":["bridge"]}`],
    [
      'list: disableCheck bool',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","disableCheck":true,"plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: disableCheck "true"',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","disableCheck":"TRUE","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: disableCheck "maybe"',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","disableCheck":"Maybe","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: disableCheck number',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","disableCheck":1,"plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: disableGC string',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","disableGC":"no","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions lenient',
      (n, _v, ps) => `{"cniVersions":["1.0","0.4.0"],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions equal spellings',
      (n, _v, ps) =>
        `{"cniVersion":"1.0.0","cniVersions":["1.0","1.0.0","1"],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions newer dropped',
      (n, _v, ps) => `{"cniVersions":["1.0.0","2.0.0"],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions bad entry',
      (n, _v, ps) => `{"cniVersions":["1.0.f"],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions number',
      (n, _v, ps) => `{"cniVersions":[1],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions string',
      (n, _v, ps) => `{"cniVersions":"1.0.0","name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: cniVersions bad cniVersion',
      (n, _v, ps) => `{"cniVersion":"x.y","cniVersions":["1.0.0"],"name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: loadOnlyInlined, no plugins',
      (n, v) => `{"cniVersion":"${v}","name":"${n}","loadOnlyInlinedPlugins":true}`,
    ],
    [
      'list: loadOnlyInlined "false"',
      (n, v, ps) =>
        `{"cniVersion":"${v}","name":"${n}","loadOnlyInlinedPlugins":"false","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: duplicate name',
      (n, v, ps) => `{"name":"first","cniVersion":"${v}","name":"${n}","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: invalid UTF-8 name',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}\u0000BAD","plugins":[${ps.join(',')}]}`,
    ],
    [
      'list: number overflow',
      (n, v, ps) => `{"cniVersion":"${v}","name":"${n}","mtu":1e309,"plugins":[${ps.join(',')}]}`,
    ],
    ['list: top-level array', (_n, _v, ps) => `[${ps.join(',')}]`],
    ['list: top-level null', () => 'null'],
    ['list: top-level string', () => '"x"'],
  ];

/** Byte-level damage: [class, transform]. */
const DAMAGE: ReadonlyArray<[string, (text: Buffer, rand: Rand) => Buffer]> = [
  ['syntax: truncated', (b, r) => b.subarray(0, Math.floor(r() * b.length))],
  ['syntax: empty', () => Buffer.alloc(0)],
  ['syntax: whitespace only', () => Buffer.from(' \n\t ')],
  ['syntax: # comment', (b) => Buffer.concat([Buffer.from('# generated\n'), b])],
  ['syntax: // comment', (b) => Buffer.concat([Buffer.from('// generated\n'), b])],
  ['syntax: NaN', (b) => Buffer.from(b.toString('latin1').replace(/:(\d+|true|false)/, ':NaN'), 'latin1')],
  ['syntax: True', (b) => Buffer.from(b.toString('latin1').replace(/:true/, ':True'), 'latin1')],
  ['syntax: trailing comma', (b) => Buffer.from(b.toString('latin1').replace(/\}$/, ',}'), 'latin1')],
  ['syntax: trailing garbage', (b) => Buffer.concat([b, Buffer.from('\n}x')])],
  ['syntax: trailing newline', (b) => Buffer.concat([b, Buffer.from('\n\n')])],
  ['syntax: BOM', (b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b])],
  ['syntax: UTF-16', (b) => Buffer.from(`\ufeff${b.toString('latin1')}`, 'utf16le')],
  [
    'syntax: control char in string',
    (b) => Buffer.from(b.toString('latin1').replace('"type":"', '"type":"\t'), 'latin1'),
  ],
  [
    'syntax: bad escape',
    (b) => Buffer.from(b.toString('latin1').replace('"type":"', '"type":"\\q'), 'latin1'),
  ],
  ['syntax: tru', (b) => Buffer.from(b.toString('latin1').replace(/true[^]*$/, 'tru'), 'latin1')],
  ['syntax: 1.', (b) => Buffer.from(b.toString('latin1').replace(/\d+[^]*$/, '1.'), 'latin1')],
  [
    'syntax: pretty-printed',
    (b) => Buffer.from(JSON.stringify(JSON.parse(b.toString('latin1')) as unknown, null, 2), 'latin1'),
  ],
];

const FILE_NAMES = [
  '10-net.conflist',
  '10-net.conf',
  '10-net.json',
  '05-first.conflist',
  '99-last.conf',
  '.conflist',
  '.hidden.conf',
  'ZZ.conflist',
  '100-x.conflist',
  '11-x.conf',
  '10-net.conflist.bak',
  '10-net.CONF',
];

export interface CorpusDir {
  dir: string;
  classes: string[];
  /** Why this dir may differ from libcni on purpose (we refuse FIFOs and files over the size cap). */
  allowed: string[];
}

/** The --max-file-size the differential test runs with (small, so a big file is cheap to write). */
export const MAX_FILE_SIZE = 64 * 1024;

/** Leaves a unix socket file behind (bound, then the process exits without unlinking it). */
function bindSocket(path: string): void {
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
}

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** Writes `count` conf dirs under `root`; returns each dir with the classes it exercises. */
export function writeCorpus(root: string, count: number, seed: number): CorpusDir[] {
  const rand = rng(seed);
  const dirs: CorpusDir[] = [];
  for (let i = 0; i < count; i++) {
    const dir = join(root, `d${String(i).padStart(5, '0')}`);
    mkdirSync(dir, { recursive: true });
    const classes: string[] = [];
    const allowed: string[] = [];
    const files = 1 + Math.floor(rand() * rand() * 4);
    const used = new Set<string>();
    for (let f = 0; f < files; f++) {
      const name = pick(rand, FILE_NAMES);
      if (used.has(name)) continue;
      used.add(name);
      const content = fileContent(name, rand, classes);
      writeFileSync(join(dir, name), content.bytes);
      if (content.subdir) {
        const sub = join(dir, content.subdir.network);
        mkdirSync(sub, { recursive: true });
        for (const [file, text] of content.subdir.files) writeFileSync(join(sub, file), text);
        classes.push(`subdir: ${content.subdir.kind}`);
      }
    }
    const special = rand();
    const first = [...used][0] ?? '10-net.conflist';
    const valid = '{"cniVersion":"1.0.0","name":"special","plugins":[{"type":"bridge"}]}';
    if (special < 0.03) {
      mkdirSync(join(dir, 'adir.conf'));
      classes.push('listing: dir named .conf');
    } else if (special < 0.06) {
      mkdirSync(join(dir, 'target'));
      symlinkSync('target', join(dir, '01-dirlink.conf'));
      classes.push('listing: symlink to a dir');
    } else if (special < 0.09) {
      symlinkSync('nowhere.conflist', join(dir, '01-broken.conflist'));
      classes.push('listing: broken symlink');
    } else if (special < 0.12) {
      symlinkSync(first, join(dir, '00-link.conflist'));
      classes.push('listing: symlink to a file');
    } else if (special < 0.15) {
      const name = Buffer.concat([Buffer.from('01-'), Buffer.from([0xff, 0xc3]), Buffer.from('.conflist')]);
      writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), name]), valid);
      classes.push('listing: file name not UTF-8');
    } else if (special < 0.17) {
      mkfifo(join(dir, '00-fifo.conflist'));
      allowed.push('FIFO');
      classes.push('allowed: FIFO');
    } else if (special < 0.2) {
      bindSocket(join(dir, '00-sock.conf'));
      classes.push('listing: unix socket');
    } else if (special < 0.21) {
      // A character device (what /dev/null is): libcni reads it, we refuse it.
      execFileSync('mknod', [join(dir, '00-dev.conflist'), 'c', '1', '3']);
      allowed.push('device');
      classes.push('allowed: device');
    } else if (special < 0.23) {
      const padding = 'x'.repeat(MAX_FILE_SIZE);
      writeFileSync(
        join(dir, '00-huge.conflist'),
        `{"name":"huge","pad":"${padding}","plugins":[{"type":"bridge"}]}`,
      );
      allowed.push(`over --max-file-size (${MAX_FILE_SIZE} bytes)`);
      classes.push('allowed: over --max-file-size');
    }
    classes.push(`files: ${used.size}`);
    dirs.push({ dir, classes, allowed });
  }
  return dirs;
}

interface Content {
  bytes: Buffer;
  subdir?: { network: string; kind: string; files: Array<[string, string]> };
}

function fileContent(name: string, rand: Rand, classes: string[]): Content {
  const isList = name.endsWith('.conflist');
  const network = pick(rand, NAMES);
  const version = pick(rand, VERSIONS);
  const plugins: string[] = [];
  const count = isList ? 1 + Math.floor(rand() * 3) : 1;
  for (let i = 0; i < count; i++) {
    let plugin = pick(rand, PLUGINS);
    if (rand() < 0.6) {
      const [kind, mutate] = pick(rand, PLUGIN_MUTATIONS);
      plugin = mutate(plugin, rand);
      classes.push(kind);
    }
    plugins.push(plugin);
  }
  let text: string;
  if (isList) {
    const [kind, build] =
      rand() < 0.5 ? (LIST_SHAPES[0] as (typeof LIST_SHAPES)[number]) : pick(rand, LIST_SHAPES);
    text = build(network, version, plugins, rand);
    classes.push(kind);
  } else if (rand() < 0.1) {
    text = `{"cniVersion":"${version}","name":"${network}","plugins":[${plugins.join(',')}]}`;
    classes.push('conf: holds a list');
  } else {
    const plugin = plugins[0] ?? '{}';
    text = `{"cniVersion":"${version}","name":"${network}",${plugin.slice(1)}`;
    classes.push('conf: plugin');
  }
  let bytes: Buffer = Buffer.from(text, 'utf8');
  // Invalid UTF-8: the marker becomes a lone 0xff byte.
  const marker = bytes.indexOf('\u0000BAD');
  if (marker >= 0)
    bytes = Buffer.concat([bytes.subarray(0, marker), Buffer.from([0xff]), bytes.subarray(marker + 4)]);
  if (rand() < 0.2) {
    const [kind, damage] = pick(rand, DAMAGE);
    try {
      bytes = damage(bytes, rand);
      classes.push(kind);
    } catch {
      // A transform that needs valid JSON (pretty-printing) leaves the file as it is.
    }
  }
  const content: Content = { bytes };
  if (isList && rand() < 0.25) {
    const kinds: Array<[string, Array<[string, string]>]> = [
      ['one plugin', [['10-pm.conf', '{"type":"portmap","capabilities":{"portMappings":true}}']]],
      [
        'two plugins',
        [
          ['20-b.conf', '{"type":"bandwidth"}'],
          ['10-a.conf', '{"type":"tuning"}'],
        ],
      ],
      ['bad plugin', [['10-bad.conf', '{"capabilities":{"portMappings":true}}']]],
      ['typed error', [['10-dns.conf', '{"type":"x","dns":{"nameservers":"1.1.1.1"}}']]],
      [
        'other extensions ignored',
        [
          ['10-pm.conflist', '{'],
          ['10-pm.json', '{'],
        ],
      ],
      ['syntax error', [['10-x.conf', '{"type":"x",}']]],
    ];
    const [kind, files] = pick(rand, kinds);
    content.subdir = { network, kind, files };
  }
  return content;
}
