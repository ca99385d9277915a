// IdMap: a hash map from 64-bit ids (client ids) to values, for the state
// store's session cache, which every put reads several times on the leader.
// std::unordered_map (libstdc++) divides by a prime bucket count and follows
// a node pointer on every lookup; here the table is one array of slots,
// indexed by a multiplicative hash and probed linearly. Pointers returned
// stay valid until the next insertion or erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace raftkv::kv {

template <class V>
class IdMap {
 public:
  V* find(uint64_t id) {
    if (size_ == 0) return nullptr;
    for (size_t i = home(id);; i = next(i)) {
      Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.id == id) return &s.value;
    }
  }
  const V* find(uint64_t id) const { return const_cast<IdMap*>(this)->find(id); }

  // The value for `id`, inserted as V{} if absent.
  V& operator[](uint64_t id) {
    if (V* v = find(id)) return *v;
    if (2 * (size_ + 1) > slots_.size()) grow();
    size_t i = home(id);
    while (slots_[i].used)
      i = next(i);
    slots_[i].used = true;
    slots_[i].id = id;
    ++size_;
    return slots_[i].value;
  }

  void erase(uint64_t id) {
    if (size_ == 0) return;
    size_t hole = home(id);
    while (slots_[hole].used && slots_[hole].id != id)
      hole = next(hole);
    if (!slots_[hole].used) return;
    // Backward shift: a later slot of the same probe run moves into the hole
    // when the hole lies between its home and it, so that every id stays
    // reachable from its home without crossing an empty slot.
    for (size_t j = next(hole); slots_[j].used; j = next(j)) {
      const size_t h = home(slots_[j].id);
      const bool stays = hole < j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      slots_[hole] = std::move(slots_[j]);
      hole = j;
    }
    slots_[hole] = Slot{};
    --size_;
  }

  void clear() {
    slots_.clear();
    size_ = 0;
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t id = 0;
    bool used = false;
    V value{};
  };

  // Fibonacci hashing: the high bits of id * 2^64/phi, so that ids that
  // differ only in their high bits (or are sequential) still spread out.
  size_t home(uint64_t id) const {
    return static_cast<size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    const size_t capacity = old.empty() ? 16 : 2 * old.size();
    slots_.assign(capacity, Slot{});
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1)
      --shift_;
    size_ = 0;
    for (Slot& s : old) {
      if (s.used) (*this)[s.id] = std::move(s.value);
    }
  }

  // Invariant: slots_.size() is 0 or a power of two, at least twice size_;
  // shift_ = 64 - log2(slots_.size()).
  std::vector<Slot> slots_;
  size_t size_ = 0;
  int shift_ = 64;
};

}  // namespace raftkv::kv
