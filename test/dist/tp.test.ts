// Tensor-parallel tiny-py (the bundled model) over the shm backend: TP = 2 and TP = 4 logits of a batched prefill
// and three decode steps equal TP = 1 within the tolerance table (the rows of matmul: only the order of the
// row-parallel sums differs), every rank's greedy transcripts are identical to each other and to TP = 1, with
// float weights and with q8_0 quantized on load (whose blocks of 32 align with every rank's slice).
import { describe, expect, it } from 'vitest';
import { compare } from '../helpers/check.js';
import { killAll, startRanks } from '../helpers/ranks.js';

interface TpReport {
  rank: number;
  localKvHeads: number;
  logits: number[][] | null;
  transcripts: number[][];
}

async function runTp(world: number, quant: string): Promise<TpReport[]> {
  const runs = startRanks('tp-rank.mjs', world, { LK_QUANT: quant });
  try {
    const exits = await Promise.all(runs.map((r) => r.exited));
    exits.forEach((e, i) => expect(e.code, `TP=${world} rank ${i}: ${runs[i]!.stderr}`).toBe(0));
    return runs.map((r) => r.lines.at(-1) as unknown as TpReport);
  } finally {
    await killAll(runs);
  }
}

describe('tensor-parallel tiny-py equals TP = 1', () => {
  for (const quant of ['', 'q8_0']) {
    it(`${quant || 'f32 weights'}: TP = 2 and TP = 4`, async () => {
      const [one] = await runTp(1, quant);
      expect(one!.localKvHeads).toBe(2);
      for (const world of [2, 4]) {
        const reports = await runTp(world, quant);
        // Hkv = 2: split at TP = 2, replicated (one per rank) at TP = 4.
        for (const r of reports) expect(r.localKvHeads).toBe(1);
        const zero = reports.find((r) => r.rank === 0)!;
        expect(zero.logits!.length).toBe(one!.logits!.length);
        zero.logits!.forEach((step, s) => {
          const c = compare('matmul', 'f32', step, one!.logits![s]!, `${quant || 'f32'} TP=${world} step ${s}`);
          expect(c.ok, c.message).toBe(true);
        });
        for (const r of reports) expect(r.transcripts, `TP=${world} rank ${r.rank}`).toEqual(one!.transcripts);
      }
    }, 180_000);
  }
});
