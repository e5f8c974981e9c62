// libFuzzer target for ring_buffer: write, peek, next, discard, read, fill_from, drain_to,
// trim and clear against a model (the operations are decoded in fuzz_driver.hpp).
#include <actnet/buffers/ring_buffer.hpp>
#include <cstddef>
#include <cstdint>

#include "fuzz_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return actnet::fuzz::run<actnet::ring_buffer>(data, size);
}
