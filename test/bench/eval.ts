// `npm run eval`: every workload in test/workloads under the real agent and
// collector, two at a time; prints the confusion matrix, precision/recall for
// busy-loop, kind accuracy and time to first busy-loop verdict.
import { fmt, VerdictHarness, type WorkloadOutcome } from '../helpers/verdict-harness.js';
import { WORKLOADS } from '../helpers/workloads.js';

const windowSeconds = Number(process.env.HOTLOOP_EVAL_WINDOW ?? 10);
const windowsPerWorkload = Number(process.env.HOTLOOP_EVAL_WINDOWS ?? 4);
const CLASSES = ['busy-loop', 'working', 'idle'] as const;

function report(outcomes: WorkloadOutcome[]): void {
  const matrix = new Map<string, number>();
  for (const o of outcomes) {
    const key = `${o.workload.expected.verdict}>${o.predicted.verdict}`;
    matrix.set(key, (matrix.get(key) ?? 0) + 1);
  }
  console.log('\nconfusion matrix (rows: expected, columns: predicted)');
  console.log(`${''.padEnd(12)}${CLASSES.map((c) => c.padStart(11)).join('')}`);
  for (const e of CLASSES) console.log(`${e.padEnd(12)}${CLASSES.map((p) => String(matrix.get(`${e}>${p}`) ?? 0).padStart(11)).join('')}`);

  const tp = matrix.get('busy-loop>busy-loop') ?? 0;
  const predictedBusy = outcomes.filter((o) => o.predicted.verdict === 'busy-loop').length;
  const actualBusy = outcomes.filter((o) => o.workload.expected.verdict === 'busy-loop').length;
  const precision = predictedBusy > 0 ? tp / predictedBusy : 0;
  const recall = actualBusy > 0 ? tp / actualBusy : 0;
  const kindsRight = outcomes.filter((o) => fmt(o.predicted) === fmt(o.workload.expected)).length;
  console.log(`\nbusy-loop precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)} (goal: both ≥ 0.95)`);
  console.log(`verdict and kind exactly right: ${kindsRight}/${outcomes.length}`);

  const times = outcomes.filter((o) => o.workload.expected.verdict === 'busy-loop' && o.detectionSeconds !== null).map((o) => o.detectionSeconds as number);
  times.sort((a, b) => a - b);
  if (times.length > 0) {
    const median = times[Math.floor(times.length / 2)] ?? 0;
    const max = times[times.length - 1] ?? 0;
    console.log(`time from workload start to first busy-loop verdict: median ${median.toFixed(1)} s, max ${max.toFixed(1)} s over ${times.length} detected (goal: within 30 s)`);
  }
}

async function main(): Promise<void> {
  console.log(`hotloop eval: ${WORKLOADS.length} workloads, two at a time, --window ${windowSeconds}, watched ${windowsPerWorkload} windows each`);
  const harness = new VerdictHarness({ windowSeconds, windowsPerWorkload, log: (l) => console.log(l) });
  await harness.start();
  const outcomes: WorkloadOutcome[] = [];
  try {
    for (let i = 0; i < WORKLOADS.length; i += 2) outcomes.push(...(await harness.run(WORKLOADS.slice(i, i + 2))));
  } finally {
    await harness.stop();
  }
  report(outcomes);
}

await main();
