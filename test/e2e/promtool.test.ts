// The chart's alerts and dashboard against the real promtool (Debian's prometheus package, found
// through scripts/peers.sh): the rules file is valid, its unit tests fire and do not fire every
// alert, the rendered PrometheusRule is the same file, every runbook link lands on a section of
// docs/runbooks.md, and every metric and dashboard query is valid PromQL naming real metrics.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { REPO_ROOT, startInProcess } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { requirePeers, run } from './harness/peers.js';
import type { RunResult } from './harness/peers.js';
import { promtool } from './harness/prometheus.js';

const CHART = join(REPO_ROOT, 'charts', 'cri-netstatus');
const ALERTS = join(CHART, 'files', 'alerts.yaml');
const ALERT_TESTS = join(CHART, 'tests', 'alerts-test.yaml');
const DASHBOARD = join(CHART, 'files', 'dashboard.json');
const RUNBOOKS = join(REPO_ROOT, 'docs', 'runbooks.md');
const RUNBOOK_BASE = 'https://github.com/cri-netstatus/cri-netstatus/blob/main/docs/runbooks.md';

let helmBin = '';
before(() => {
  helmBin = requirePeers('promtool', 'helm').helm;
});

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
}
interface TestFile {
  rule_files: string[];
  tests: { name?: string; alert_rule_test?: AlertTest[] }[];
}

const alertsFile = (): RuleFile => parseYaml(readFileSync(ALERTS, 'utf8')) as RuleFile;
const alertRules = (file: RuleFile): Rule[] =>
  file.groups.flatMap((group) => group.rules.filter((r) => r.alert));

/** GitHub's heading anchors: lower case, spaces to dashes, punctuation other than - and _ dropped. */
function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function runbookAnchors(): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of readFileSync(RUNBOOKS, 'utf8').split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    const heading = !inFence && /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) anchors.add(githubSlug(heading[1] ?? ''));
  }
  return anchors;
}

/** Runs `promtool check rules` on a file holding each expression as a recording rule. */
async function checkExpressions(dir: string, exprs: string[]): Promise<RunResult> {
  const file = join(dir, `exprs-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
  const rules: RuleFile = {
    groups: [{ name: 'exprs', rules: exprs.map((expr, i) => ({ record: `check:expr_${i}`, expr })) }],
  };
  writeFileSync(file, stringify(rules));
  return promtool(['check', 'rules', file]);
}

/** PromQL keywords and aggregation operators (followed by by/without, so not by a parenthesis). */
const PROMQL_WORDS = new Set(
  'by without on ignoring group_left group_right and or unless bool offset inf nan sum min max avg count group stddev stdvar topk bottomk quantile count_values'.split(
    ' ',
  ),
);

/** Metric names (not functions, keywords or labels) that an expression selects. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutMatchers = withoutStrings.replace(/\{[^}]*\}/g, '{}');
  const names = new Set<string>();
  for (const match of withoutMatchers.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const name = match[1] ?? '';
    if (PROMQL_WORDS.has(name.toLowerCase())) continue;
    // Label names inside by (...) / without (...) / on (...) lists.
    const before = withoutMatchers.slice(0, match.index);
    if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) continue;
    if (/^\d/.test(name) || /\[[^\]]*$/.test(before)) continue;
    names.add(name);
  }
  return [...names];
}

/** Every Prometheus query in the dashboard, Grafana variables replaced by concrete values. */
function dashboardQueries(): { where: string; expr: string }[] {
  interface Target {
    expr?: string;
  }
  interface Panel {
    title?: string;
    targets?: Target[];
    panels?: Panel[];
  }
  interface Variable {
    name: string;
    type: string;
    query?: string | { query: string };
  }
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Panel[];
    templating: { list: Variable[] };
  };
  const substitute = (expr: string): string =>
    expr
      .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
      .replace(/\$\{?(job|instance|node)\}?/g, '.+')
      .replace(/\$\{?[a-zA-Z_]+\}?/g, 'x');
  const queries: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? [])
        if (target.expr !== undefined)
          queries.push({ where: `panel "${panel.title ?? '?'}"`, expr: substitute(target.expr) });
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const raw = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    const labelValues = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/.exec(raw);
    const expr = labelValues ? labelValues[1] : raw;
    queries.push({ where: `variable $${variable.name}`, expr: substitute(expr ?? '') });
  }
  return queries;
}

// ---- the rules file --------------------------------------------------------------------------

test('the promtool peer runs', async () => {
  const result = await promtool(['--version']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(`${result.stdout}${result.stderr}`, /promtool, version \d+\.\d+/);
});

describe('files/alerts.yaml', () => {
  test('promtool check rules accepts it, every rule counted', async () => {
    const result = await promtool(['check', 'rules', ALERTS]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    const count = alertRules(alertsFile()).length;
    assert.match(result.stdout, new RegExp(`SUCCESS: ${count} rules found`));
  });

  test('promtool check rules rejects a broken copy (the check can fail)', async (t) => {
    const broken = join(tempDir(t), 'alerts.yaml');
    writeFileSync(
      broken,
      readFileSync(ALERTS, 'utf8').replace(
        'cri_netstatus_config_stale == 1',
        'cri_netstatus_config_stale == = 1',
      ),
    );
    const result = await promtool(['check', 'rules', broken]);
    assert.notEqual(result.code, 0);
  });

  test('the alerts on-call needs are all there, each with severity, summary, description and a runbook', () => {
    const rules = alertRules(alertsFile());
    const names = rules.map((rule) => rule.alert);
    for (const needed of [
      'CriNetstatusNetworkNotReady',
      'CriNetstatusConfigStale',
      'CriNetstatusRefreshFailures',
      'CriNetstatusAgentDown',
      'CriNetstatusAgentAbsent',
      'CriNetstatusUpstreamDivergence',
      'CriNetstatusRuntimeNotReady',
    ])
      assert.ok(names.includes(needed), `${needed} is missing`);
    assert.equal(new Set(names).size, names.length, 'alert names are unique');
    const anchors = runbookAnchors();
    for (const rule of rules) {
      const name = rule.alert ?? '';
      assert.match(rule.labels?.severity ?? '', /^(critical|warning|info)$/, `${name} severity`);
      assert.ok(rule.annotations?.summary, `${name} summary`);
      assert.ok(rule.annotations.description, `${name} description`);
      assert.equal(
        rule.annotations.runbook_url,
        `${RUNBOOK_BASE}#${name.toLowerCase()}`,
        `${name} runbook_url`,
      );
      assert.ok(anchors.has(name.toLowerCase()), `docs/runbooks.md has no "## ${name}" section`);
    }
  });

  test('values.schema.json lists exactly these alerts for disabledAlerts', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: {
        prometheus: {
          properties: { prometheusRule: { properties: { disabledAlerts: { items: { enum: string[] } } } } };
        };
      };
    };
    const listed =
      schema.properties.prometheus.properties.prometheusRule.properties.disabledAlerts.items.enum;
    assert.deepEqual(
      [...listed].sort(),
      alertRules(alertsFile())
        .map((rule) => rule.alert)
        .sort(),
    );
  });
});

describe('promtool test rules (charts/cri-netstatus/tests/alerts-test.yaml)', () => {
  test('every case passes', async () => {
    const result = await promtool(['test', 'rules', ALERT_TESTS]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /SUCCESS/);
  });

  test('every alert has a case where it fires and a case where it does not', () => {
    const tests = parseYaml(readFileSync(ALERT_TESTS, 'utf8')) as TestFile;
    const cases = tests.tests.flatMap((group) => group.alert_rule_test ?? []);
    for (const rule of alertRules(alertsFile())) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${rule.alert ?? ''}: no case where it fires`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${rule.alert ?? ''}: no case where it does not fire`,
      );
      for (const c of mine)
        for (const alert of c.exp_alerts ?? [])
          assert.ok(
            alert.exp_annotations?.runbook_url,
            `${rule.alert ?? ''}: firing cases check the annotations`,
          );
    }
  });

  test('the unit tests catch a changed alert (they can fail)', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'files'));
    mkdirSync(join(dir, 'tests'));
    copyFileSync(ALERT_TESTS, join(dir, 'tests', 'alerts-test.yaml'));
    const original = readFileSync(ALERTS, 'utf8');
    const mutations: [string, string][] = [
      [
        'expr: cri_netstatus_network_ready == 0\n        for: 5m',
        'expr: cri_netstatus_network_ready == 0\n        for: 10m',
      ],
      ['expr: up{job="cri-netstatus"} == 0', 'expr: up == 0'],
      ['> 0.1', '> 0.5'],
    ];
    for (const [from, to] of mutations) {
      assert.ok(original.includes(from), `mutation target not found: ${from}`);
      writeFileSync(join(dir, 'files', 'alerts.yaml'), original.replace(from, to));
      const result = await promtool(['test', 'rules', join(dir, 'tests', 'alerts-test.yaml')]);
      assert.notEqual(result.code, 0, `the unit tests did not notice ${from} -> ${to}`);
    }
  });
});

// ---- the rendered rules ----------------------------------------------------------------------

async function renderedRules(
  args: string[],
  release = 'cri-netstatus',
  namespace = 'kube-system',
): Promise<RuleFile> {
  const result = await run(
    helmBin,
    [
      'template',
      release,
      CHART,
      '--namespace',
      namespace,
      '--api-versions',
      'monitoring.coreos.com/v1',
      '--set',
      'prometheus.prometheusRule.enabled=true',
      '--show-only',
      'templates/prometheusrule.yaml',
      ...args,
    ],
    { env: { KUBECONFIG: '/nonexistent' }, timeoutMs: 120_000 }, // no cluster: never reach one
  );
  assert.equal(result.code, 0, result.stderr);
  const rule = parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS() as { kind?: string; spec?: RuleFile } | null)
    .find((object) => object?.kind === 'PrometheusRule');
  assert.ok(rule?.spec, 'helm rendered no PrometheusRule');
  return rule.spec;
}

describe('the rendered PrometheusRule', () => {
  test('with the defaults it is files/alerts.yaml exactly, so the unit tests cover it', async () => {
    assert.deepEqual(await renderedRules([]), alertsFile());
  });

  const scenarios: [string, string[], string, string][] = [
    ['defaults', [], 'cri-netstatus', 'kube-system'],
    [
      'ci/monitoring-values.yaml',
      ['-f', join(CHART, 'ci', 'monitoring-values.yaml')],
      'cri-netstatus',
      'kube-system',
    ],
    [
      'another release, namespace, selector and runbook host',
      [
        '--set-string',
        'prometheus.prometheusRule.agentSelector=job=~"kubernetes-pods|cri-netstatus"\\,namespace="ops"',
        '--set',
        'prometheus.prometheusRule.runbookBaseUrl=https://runbooks.example.com/cri-netstatus',
      ],
      'edge',
      'ops',
    ],
  ];
  for (const [name, args, release, namespace] of scenarios) {
    test(`promtool check rules: ${name}`, async (t) => {
      const rules = await renderedRules(args, release, namespace);
      const file = join(tempDir(t), 'rendered.yaml');
      writeFileSync(file, stringify(rules));
      const result = await promtool(['check', 'rules', file]);
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    });
  }

  test('deploy/prometheus/cri-netstatus.rules.yaml passes check rules and the unit tests', async (t) => {
    const plain = join(REPO_ROOT, 'deploy', 'prometheus', 'cri-netstatus.rules.yaml');
    const check = await promtool(['check', 'rules', plain]);
    assert.equal(check.code, 0, `${check.stdout}${check.stderr}`);
    const dir = tempDir(t);
    // Text, not a YAML round trip: promtool reads series values such as 0x10 as strings.
    const tests = readFileSync(ALERT_TESTS, 'utf8').replace(
      '\n  - ../files/alerts.yaml\n',
      `\n  - ${plain}\n`,
    );
    assert.ok(tests.includes(plain), 'rule_files rewritten');
    writeFileSync(join(dir, 'tests.yaml'), tests);
    const result = await promtool(['test', 'rules', join(dir, 'tests.yaml')]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
  });
});

// ---- metric names and the dashboard ----------------------------------------------------------

/** Metric names a real agent exposes (with an unreachable --runtime-endpoint, so the upstream ones too). */
async function exposedMetrics(t: Parameters<typeof tempDir>[0]): Promise<Set<string>> {
  const dir = tempDir(t);
  const { metricsUrl, client } = await startInProcess(t, [
    '--runtime-endpoint',
    `unix://${join(dir, 'no-runtime.sock')}`,
  ]);
  await client.status(); // cri_netstatus_status_requests_total appears with the first call
  const body = await (await fetch(metricsUrl)).text();
  const names = new Set<string>();
  // Samples, and TYPE lines of metrics registered without a sample yet (an info gauge with no
  // network in force, the upstream conditions while the runtime does not answer).
  for (const line of body.split('\n')) {
    const match = /^(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (match?.[1]) names.add(match[1]);
    // A labelled histogram with no observation yet (the plugin STATUS durations without probing)
    // has only its TYPE line; its series are these once it observes.
    const histogram = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) histogram$/.exec(line);
    if (histogram?.[1]) for (const suffix of ['_bucket', '_sum', '_count']) names.add(histogram[1] + suffix);
  }
  return names;
}

/** Metrics that come from elsewhere: Prometheus itself and kube-state-metrics. */
const EXTERNAL_METRICS = new Set([
  'up',
  'kube_daemonset_status_desired_number_scheduled',
  'kube_daemonset_status_number_available',
]);

/** Metrics the Kubernetes reporter registers only with --kube on (it needs an API server). */
const KUBE_METRICS = new Set(['cri_netstatus_kube_condition_synced']);

test('the kube reporter metrics the alerts use are defined in src/kube', () => {
  const dir = join(REPO_ROOT, 'src', 'kube');
  const source = readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .map((file) => readFileSync(join(dir, file), 'utf8'))
    .join('\n');
  for (const name of KUBE_METRICS)
    assert.ok(source.includes(`name: '${name}'`), `src/kube defines no metric ${name}`);
});

test('every metric the alerts and the dashboard query is exposed by the real agent', async (t) => {
  const exposed = await exposedMetrics(t);
  for (const name of KUBE_METRICS) exposed.add(name);
  assert.ok(exposed.has('cri_netstatus_network_ready'), 'the scrape works');
  const queries = [
    ...alertRules(alertsFile()).map((rule) => ({ where: `alert ${rule.alert ?? ''}`, expr: rule.expr })),
    ...dashboardQueries(),
  ];
  const missing: string[] = [];
  for (const { where, expr } of queries)
    for (const name of metricNames(expr))
      if (!exposed.has(name) && !EXTERNAL_METRICS.has(name)) missing.push(`${where}: ${name}`);
  assert.deepEqual(missing, [], `queried but not exposed:\n${missing.join('\n')}`);
});

describe('the Grafana dashboard', () => {
  test('is valid Grafana JSON with a uid, a Prometheus datasource variable and panels', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      uid: string;
      title: string;
      panels: unknown[];
      templating: { list: { name: string; type: string }[] };
    };
    assert.equal(dashboard.uid, 'cri-netstatus');
    assert.ok(dashboard.panels.length >= 10);
    assert.ok(dashboard.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'));
  });

  test('every query is valid PromQL (promtool check rules)', async (t) => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 20, `only ${queries.length} queries found`);
    const dir = tempDir(t);
    const result = await checkExpressions(
      dir,
      queries.map((q) => q.expr),
    );
    assert.equal(
      result.code,
      0,
      `${result.stdout}${result.stderr}\n${queries.map((q) => `${q.where}: ${q.expr}`).join('\n')}`,
    );
    assert.match(result.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });

  test('the same check rejects an invalid query (it can fail)', async (t) => {
    const result = await checkExpressions(tempDir(t), ['sum by (instance (cri_netstatus_network_ready)']);
    assert.notEqual(result.code, 0);
  });
});

test('docs/runbooks.md has a section per alert and the kubectl debug runbook', () => {
  const anchors = runbookAnchors();
  for (const rule of alertRules(alertsFile()))
    assert.ok(anchors.has((rule.alert ?? '').toLowerCase()), rule.alert);
  const text = readFileSync(RUNBOOKS, 'utf8');
  for (const needle of [
    'kubectl debug node/',
    '--target=cri-netstatus',
    'cri-netstatus status --socket /host/run/cri-netstatus/cri.sock',
    'cri-netstatus check --host-root /host',
    'kubectl events --for node/',
  ])
    assert.ok(text.includes(needle), `docs/runbooks.md lacks ${needle}`);
  for (const match of text.matchAll(/\]\(#([^)]+)\)/g))
    assert.ok(anchors.has(match[1] ?? ''), `docs/runbooks.md links to a missing section #${match[1] ?? ''}`);
  // Every file the runbooks point at exists in the repo.
  for (const match of text.matchAll(/\]\((\.\.\/[^)#]+)/g)) {
    const target = join(REPO_ROOT, 'docs', match[1] ?? '');
    assert.ok(existsSync(target), `docs/runbooks.md links to missing ${match[1] ?? ''}`);
  }
});
