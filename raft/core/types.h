// Distinct value types for the paper's vocabulary: a Term, an Index and a
// NodeId are all 64-bit numbers, but mixing them up is a bug the compiler
// should catch.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

#include <fmt/format.h>

namespace raftkv::raft {

template <class Tag>
struct StrongU64 {
  uint64_t value = 0;

  constexpr StrongU64() = default;
  constexpr explicit StrongU64(uint64_t v) : value(v) {}
  constexpr auto operator<=>(const StrongU64&) const = default;
};

struct TermTag {};
struct NodeIdTag {};

// Term: a logical clock; Raft §5.1. 0 means "no term yet".
using Term = StrongU64<TermTag>;
// NodeId: a cluster member's id. 0 means "none".
using NodeId = StrongU64<NodeIdTag>;
inline constexpr NodeId kNoNode{0};

// Index: a log position. Indexes are consecutive, so a little arithmetic is
// allowed: Index + n, Index - n, and the distance between two indexes.
struct Index {
  uint64_t value = 0;

  constexpr Index() = default;
  constexpr explicit Index(uint64_t v) : value(v) {}
  constexpr auto operator<=>(const Index&) const = default;
  constexpr Index operator+(uint64_t n) const { return Index(value + n); }
  constexpr Index operator-(uint64_t n) const { return Index(value - n); }
  constexpr uint64_t operator-(Index o) const { return value - o.value; }
  constexpr Index& operator++() {
    ++value;
    return *this;
  }
};

constexpr Term next(Term t) {
  return Term(t.value + 1);
}

}  // namespace raftkv::raft

template <class Tag>
struct std::hash<raftkv::raft::StrongU64<Tag>> {
  size_t operator()(const raftkv::raft::StrongU64<Tag>& v) const noexcept {
    return std::hash<uint64_t>()(v.value);
  }
};

template <class Tag>
struct fmt::formatter<raftkv::raft::StrongU64<Tag>> : fmt::formatter<uint64_t> {
  auto format(const raftkv::raft::StrongU64<Tag>& v, fmt::format_context& ctx) const {
    return fmt::formatter<uint64_t>::format(v.value, ctx);
  }
};
template <>
struct fmt::formatter<raftkv::raft::Index> : fmt::formatter<uint64_t> {
  auto format(const raftkv::raft::Index& v, fmt::format_context& ctx) const {
    return fmt::formatter<uint64_t>::format(v.value, ctx);
  }
};
