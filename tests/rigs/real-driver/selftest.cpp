// The real-driver differential's own machinery, without a guest: the stream is a
// pure function of (profile, seed, index); the executor applied to two identical
// models gives identical records; the rig's geometry (written out from the
// driver) and the model's layout agree on every region.
#include "model.hpp"
#include "ops.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include <doctest/doctest.h>

#include <vector>

namespace {

using namespace nvgrace;
using shim_device = rig::model_device;

shim_device model(const rig::profile& p, const rig::stream& s) {
  const shim::device_options o = rig::model_options(p);
  if (p.fallback()) {
    auto d = shim_device::create(o);
    REQUIRE(d.has_value());
    return std::move(*d);
  }
  auto memory = mem::memfd_memory::create(p.size);
  REQUIRE(memory.has_value());
  for (const auto& w : s.seed_windows())
    rig::fill_seed(std::span<std::byte>(memory->view().base + w.first, static_cast<std::size_t>(w.second - w.first)),
                   w.first);
  auto d = shim_device::create(o, std::move(*memory));
  REQUIRE(d.has_value());
  return std::move(*d);
}

rig::profile low() {
  rig::profile p;
  p.base = 0x2000'0000;
  p.size = 0x72C0'0123;
  return p;
}
rig::profile big() {
  rig::profile p;
  p.base = 0x2'0000'0000;
  p.size = 65 * rig::GiB_ + 100 * rig::MiB_ + 0x123;
  return p;
}
rig::profile blackwell() {
  rig::profile p = low();
  p.generation = rig::gpu::blackwell;
  p.size = 0x52C0'0123;
  return p;
}
rig::profile fallback() {
  rig::profile p;
  p.bar2_size = 2 * rig::MiB_;
  p.bar4_size = 4 * rig::MiB_;
  return p;
}

}  // namespace

TEST_CASE("rig: the stream is a pure function of profile, seed and index") {
  const rig::stream a(low(), 7, 500), b(low(), 7, 500), c(low(), 8, 500);
  int differ = 0;
  for (std::uint64_t i = 0; i < 500; ++i) {
    const rig::op x = a.at(i), y = b.at(i), z = c.at(i);
    CHECK(x.k == y.k);
    CHECK(x.offset == y.offset);
    CHECK(x.length == y.length);
    CHECK(x.value == y.value);
    differ += (x.k != z.k || x.offset != z.offset || x.length != z.length) ? 1 : 0;
  }
  CHECK(differ > 250);  // another seed, another stream
  // Every class of operation occurs in a stream of a few thousand.
  const rig::stream big_stream(low(), 3, 20000);
  std::array<int, static_cast<std::size_t>(rig::op_class::count_)> seen{};
  for (std::uint64_t i = 0; i < 20000; ++i) ++seen[static_cast<std::size_t>(big_stream.at(i).cls)];
  for (std::size_t k = 0; k < seen.size(); ++k) {
    CAPTURE(rig::class_names[k]);
    CHECK(seen[k] > 0);
  }
}

TEST_CASE("rig: the geometry written out from the driver agrees with the model's layout") {
  for (const rig::profile& p : {low(), big(), blackwell()}) {
    const auto shapes = rig::shapes(p);
    const auto memory = grace::fetch_memory({p.base, p.size});
    REQUIRE(memory.has_value());
    const auto layout = grace::derive_layout(
        *memory, p.generation == rig::gpu::hopper ? grace::generation::hopper : grace::generation::blackwell,
        grace::kernel_rule::current);
    REQUIRE(layout.has_value());
    CHECK(shapes[4].real == layout->usemem.real_length);
    CHECK(shapes[4].bar == layout->usemem.reported_size);
    if (p.generation == rig::gpu::hopper) {
      CHECK(shapes[2].real == layout->resmem.real_length);
      CHECK(shapes[2].bar == layout->resmem.reported_size);
    }
  }
}

TEST_CASE("rig: the model against itself gives identical records") {
  for (const rig::profile& p : {low(), big(), blackwell(), fallback()}) {
    CAPTURE(p.size);
    const std::uint64_t n = 3000;
    const rig::stream s(p, 11, n);
    auto one = model(p, s);
    auto two = model(p, s);
    rig::model_target a{one}, b{two};
    std::vector<std::byte> scratch_a(rig::scratch_size), scratch_b(rig::scratch_size), pa, pb;
    std::uint64_t mismatches = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const rig::op o = s.at(i);
      const rig::record x = rig::execute(a, o, i, 11, scratch_a, pa);
      const rig::record y = rig::execute(b, o, i, 11, scratch_b, pb);
      if (x.result != y.result || x.digest != y.digest || x.aux != y.aux || pa != pb) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
}
