// byte_views helpers.
#include "actnet/buffers/byte_views.hpp"

#include <cstring>

namespace actnet {

void byte_views::copy_to(std::span<std::byte> out) const noexcept {
  if (!first.empty()) {
    std::memcpy(out.data(), first.data(), first.size());
  }
  if (!second.empty()) {
    std::memcpy(out.data() + first.size(), second.data(), second.size());
  }
}

std::string byte_views::to_string() const {
  std::string s(size(), '\0');
  copy_to(std::as_writable_bytes(std::span(s.data(), s.size())));
  return s;
}

}  // namespace actnet
