// libFuzzer target for elastic_buffer: writes that spill from the ring into the list, appended
// blocks, peek, discard, read, fill_from, drain_to and clear against a model (fuzz_driver.hpp).
#include <actnet/buffers/elastic_buffer.hpp>
#include <cstddef>
#include <cstdint>

#include "fuzz_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return actnet::fuzz::run<actnet::elastic_buffer>(data, size);
}
