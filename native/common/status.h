// Status: how every native function reports failure. Nothing in native/ calls abort(), assert() or exit() on a path
// a user can reach; a kernel returns a Status, and the N-API layer (native/addon/errors.cc) turns a non-OK Status
// into a JS error: Code::type -> TypeError, Code::range -> RangeError, every other code -> LlmKernelsError with the
// stable string code of code_name(). The strings are API: lib/errors.ts lists the same set.
#pragma once
#include <string>
#include <utility>

namespace lk {

enum class Code : int {
  ok = 0,
  type,         // wrong type of argument (TypeError)
  range,        // bad value or shape (RangeError)
  disposed,     // ERR_DISPOSED: use of a disposed tensor or handle
  oom,          // ERR_OOM: an allocation failed; the caller may free memory and retry
  device,       // ERR_DEVICE: device missing, driver error, kernel launch failure
  unsupported,  // ERR_UNSUPPORTED: a valid request this build or backend cannot serve
  model_format, // ERR_MODEL_FORMAT: a model file that is malformed, truncated or unreadable
  timeout,      // ERR_TIMEOUT: a collective or rendezvous passed its deadline (native/dist)
  peer_lost,    // ERR_PEER_LOST: a rank of the process group exited or its link broke (native/dist)
  mismatch,     // ERR_COLLECTIVE_MISMATCH: ranks called different collectives, sizes, dtypes or order
  internal,     // ERR_INTERNAL: a bug of ours; the message says where
};

constexpr const char* code_name(Code c) {
  switch (c) {
    case Code::ok: return "OK";
    case Code::type: return "ERR_INVALID_ARG_TYPE";
    case Code::range: return "ERR_OUT_OF_RANGE";
    case Code::disposed: return "ERR_DISPOSED";
    case Code::oom: return "ERR_OOM";
    case Code::device: return "ERR_DEVICE";
    case Code::unsupported: return "ERR_UNSUPPORTED";
    case Code::model_format: return "ERR_MODEL_FORMAT";
    case Code::timeout: return "ERR_TIMEOUT";
    case Code::peer_lost: return "ERR_PEER_LOST";
    case Code::mismatch: return "ERR_COLLECTIVE_MISMATCH";
    case Code::internal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }
  bool ok() const { return code_ == Code::ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::ok;
  std::string message_;
};

inline Status type_error(std::string m) { return Status(Code::type, std::move(m)); }
inline Status range_error(std::string m) { return Status(Code::range, std::move(m)); }
inline Status unsupported(std::string m) { return Status(Code::unsupported, std::move(m)); }
inline Status model_format_error(std::string m) { return Status(Code::model_format, std::move(m)); }
inline Status internal_error(std::string m) { return Status(Code::internal, std::move(m)); }

#define LK_RETURN_IF_ERROR(expr)       \
  do {                                 \
    ::lk::Status lk_st_ = (expr);      \
    if (!lk_st_.ok()) return lk_st_;   \
  } while (0)

}  // namespace lk
