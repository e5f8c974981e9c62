// libFuzzer target for linked_list_buffer: push, append of blocks, peek, discard, read,
// fill_from, drain_to and clear against a model (the operations are decoded in fuzz_driver.hpp).
#include <actnet/buffers/linked_list_buffer.hpp>
#include <cstddef>
#include <cstdint>

#include "fuzz_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return actnet::fuzz::run<actnet::linked_list_buffer>(data, size);
}
