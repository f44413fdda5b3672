// Runs body() and turns what escapes it into a Status: the CPU drivers that reach the thread pool (which allocates
// and may throw) must never let an exception through to the stream.
#pragma once
#include <exception>
#include <new>
#include <string>

#include "cpu.h"

namespace lk {

template <class F>
Status catch_to_status(const char* op, const F& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, std::string(op) + ": out of memory starting the thread pool");
  } catch (const std::exception& e) {
    return internal_error(std::string(op) + ": " + e.what());
  } catch (...) {
    return internal_error(std::string(op) + ": unknown exception");
  }
}

}  // namespace lk
