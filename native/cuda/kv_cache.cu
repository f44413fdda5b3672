// The paged KV cache on CUDA: not implemented yet (the CUDA kernels issue). The entries exist so that the kernel
// table names every op; backend.cu's supports() refuses these ops before anything is enqueued, so these bodies
// only answer a direct call (lk_check honours supports() too).
#include "kernels.h"

namespace lk {

Status cache_write_cuda(const OpArgs&) { return unsupported("cache_write: no CUDA kernel yet"); }
Status rope_cache_write_cuda(const OpArgs&) { return unsupported("rope_cache_write: no CUDA kernel yet"); }
Status kv_copy_blocks_cuda(const OpArgs&) { return unsupported("kv_copy_blocks: no CUDA kernel yet"); }
Status paged_attention_decode_cuda(const OpArgs&) { return unsupported("paged_attention_decode: no CUDA kernel yet"); }
Status paged_attention_prefill_cuda(const OpArgs&) { return unsupported("paged_attention_prefill: no CUDA kernel yet"); }

}  // namespace lk
