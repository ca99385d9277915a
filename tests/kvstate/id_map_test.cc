// IdMap against std::map under random inserts, lookups and erases, with ids
// chosen to collide in the table (same low bits, sequential, high bits only)
// so that long probe runs wrap around the end and erases shift them back.
#include "kvserver/id_map.h"

#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace raftkv::kv {
namespace {

TEST(IdMapTest, AgreesWithStdMapUnderRandomOperations) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> ids;
    for (uint64_t k = 0; k < 64; ++k) {
      ids.push_back(k);                        // sequential, 0 included
      ids.push_back(k << 58);                  // high bits only
      ids.push_back(rng() & ~uint64_t{0xff});  // same low byte
      ids.push_back(rng());
    }
    IdMap<uint64_t> map;
    std::map<uint64_t, uint64_t> model;
    for (int op = 0; op < 20000; ++op) {
      const uint64_t id = ids[rng() % ids.size()];
      switch (rng() % 4) {
        case 0:
        case 1: {
          const uint64_t v = rng();
          map[id] = v;
          model[id] = v;
          break;
        }
        case 2:
          map.erase(id);
          model.erase(id);
          break;
        case 3: {
          const uint64_t* got = map.find(id);
          auto it = model.find(id);
          ASSERT_EQ(got != nullptr, it != model.end()) << id;
          if (got != nullptr) {
            ASSERT_EQ(*got, it->second) << id;
          }
          break;
        }
      }
      ASSERT_EQ(map.size(), model.size());
    }
    for (uint64_t id : ids) {
      const uint64_t* got = map.find(id);
      auto it = model.find(id);
      ASSERT_EQ(got != nullptr, it != model.end()) << id;
      if (got != nullptr) {
        EXPECT_EQ(*got, it->second) << id;
      }
    }
    map.clear();
    EXPECT_EQ(map.size(), 0u);
    EXPECT_EQ(map.find(ids[0]), nullptr);
  }
}

TEST(IdMapTest, OperatorBracketInsertsADefaultValueOnce) {
  IdMap<std::string> map;
  EXPECT_EQ(map.find(7), nullptr);
  EXPECT_EQ(map[7], "");
  map[7] = "seven";
  EXPECT_EQ(map[7], "seven");
  EXPECT_EQ(map.size(), 1u);
  map.erase(8);  // absent: no change
  EXPECT_EQ(map.size(), 1u);
  map.erase(7);
  EXPECT_EQ(map.find(7), nullptr);
  EXPECT_EQ(map.size(), 0u);
}

}  // namespace
}  // namespace raftkv::kv
