// Tensor-parallel tiny-py (the bundled model) over the shm backend: TP = 2 and TP = 4 logits of a batched prefill
// and three decode steps equal TP = 1 within the tolerance table (the f32 rows of matmul: only the order of the
// row-parallel sums differs; with q8_0 weights its f16 rows, since the matmuls quantize their activations to int8
// per block of 32 and a last-bit difference can flip one rounding, a step of 1/127 of the block's largest value),
// every rank's greedy transcripts are identical to each other and to TP = 1, with
// float weights, with q8_0 quantized on load (whose blocks of 32 align with every rank's slice), and from a q8_0
// GGUF (each rank reads its slices from the file).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLED_MODEL } from '../../lib/cli/model-commands.js';
import { hfToGguf } from '../../lib/io/gguf.js';
import { compare } from '../helpers/check.js';
import { killAll, startRanks } from '../helpers/ranks.js';

interface TpReport {
  rank: number;
  localKvHeads: number;
  logits: number[][] | null;
  transcripts: number[][];
}

async function runTp(world: number, quant: string, model = ''): Promise<TpReport[]> {
  const runs = startRanks('tp-rank.mjs', world, { LK_QUANT: quant, LK_MODEL: model });
  try {
    const exits = await Promise.all(runs.map((r) => r.exited));
    exits.forEach((e, i) => expect(e.code, `TP=${world} rank ${i}: ${runs[i]!.stderr}`).toBe(0));
    return runs.map((r) => r.lines.at(-1) as unknown as TpReport);
  } finally {
    await killAll(runs);
  }
}

describe('tensor-parallel tiny-py equals TP = 1', () => {
  const cases: [string, string, () => string][] = [
    ['f32 weights', '', () => ''],
    ['q8_0 quantized on load', 'q8_0', () => ''],
    // A q8_0 GGUF: every rank reads its row or column blocks straight from the file.
    ['a q8_0 GGUF', '', () => {
      const f = join(mkdtempSync(join(tmpdir(), 'lk-tp-')), 'tiny-py-q8_0.gguf');
      writeFileSync(f, hfToGguf(BUNDLED_MODEL, { outtype: 'Q8_0' }));
      return f;
    }],
  ];
  for (const [label, quant, modelPath] of cases) {
    it(`${label}: TP = 2 and TP = 4`, async () => {
      const model = modelPath();
      const [one] = await runTp(1, quant, model);
      expect(one!.localKvHeads).toBe(2);
      for (const world of [2, 4]) {
        const reports = await runTp(world, quant, model);
        // Hkv = 2: split at TP = 2, replicated (one per rank) at TP = 4.
        for (const r of reports) expect(r.localKvHeads).toBe(1);
        const zero = reports.find((r) => r.rank === 0)!;
        expect(zero.logits!.length).toBe(one!.logits!.length);
        zero.logits!.forEach((step, s) => {
          const c = compare('matmul', quant || model ? 'f16' : 'f32', step, one!.logits![s]!, `${label} TP=${world} step ${s}`);
          expect(c.ok, c.message).toBe(true);
        });
        for (const r of reports) expect(r.transcripts, `TP=${world} rank ${r.rank}`).toEqual(one!.transcripts);
      }
    }, 180_000);
  }
});
