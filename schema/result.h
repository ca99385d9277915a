// Error values for everything that reads bytes from the network or the log.
// Bad input from a peer or client is an expected outcome, so it is reported
// as a value (Error, Result<T>, Status), never as an exception or an abort.
// Reading the value of a failed Result is a caller bug and aborts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "raft/core/check.h"

namespace raftkv::wire {

enum class ErrorCode : uint8_t {
  kFrameTooLarge,       // a frame's length exceeds the receiver's limit
  kChecksumMismatch,    // the payload's crc32c differs from the frame header
  kTruncated,           // the stream or a payload ended inside a frame
  kUnsupportedVersion,  // the payload header names a version we do not speak
  kBadHeader,           // unknown or unexpected payload kind, nonzero reserved bytes
  kVerificationFailed,  // the FlatBuffers Verifier rejected the body
  kInvalidValue,        // verified but meaningless: enum out of range, over a limit
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;  // what was wrong, with the offending numbers
};

// Result: a T, or the Error that prevented producing one.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }

  T& value() & {
    RAFTKV_CHECK(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    RAFTKV_CHECK(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    RAFTKV_CHECK(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    RAFTKV_CHECK(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Status: success, or the Error explaining the failure.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}

  bool ok() const { return !error_.has_value(); }
  const Error& error() const {
    RAFTKV_CHECK(!ok());
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace raftkv::wire
