// actnet's error codes: their category, messages, and how result<T> carries them.
#include "actnet/error.hpp"

#include <gtest/gtest.h>

#include <actnet/result.hpp>
#include <string>
#include <system_error>

namespace actnet {
namespace {

TEST(error, actnet_codes_convert_to_error_codes_of_the_actnet_category) {
  const std::error_code ec = errc::short_buffer;
  EXPECT_EQ(ec.category().name(), std::string("actnet"));
  EXPECT_EQ(ec.message(), "fewer bytes buffered than requested");
  EXPECT_EQ(std::error_code(errc::capacity_exceeded).message(), "buffer capacity exceeded");
  EXPECT_EQ(std::error_code(errc::queue_full).message(), "queue full");
  EXPECT_EQ(std::error_code(errc::handler_failed).message(), "the handler threw");
  for (const errc e :
       {errc::short_buffer, errc::capacity_exceeded, errc::end_of_stream, errc::connection_closed,
        errc::engine_stopped, errc::queue_full, errc::handler_failed, errc::idle_timeout,
        errc::read_timeout, errc::write_timeout, errc::drain_timeout}) {
    EXPECT_EQ(std::error_code(e).message().find("unknown"), std::string::npos)
        << static_cast<int>(e);
  }
  EXPECT_EQ(error_category().message(999), "unknown actnet error 999");
  EXPECT_NE(std::error_code(errc::short_buffer), std::error_code(errc::capacity_exceeded));
}

TEST(error, no_error_is_the_default_error_code) {
  const std::error_code none = detail::no_error();
  EXPECT_FALSE(none);
  EXPECT_EQ(none, std::error_code{});
  EXPECT_EQ(&none.category(), &std::system_category());
}

TEST(result, holds_a_value_or_an_error_but_not_both) {
  const result<int> value = 42;
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, 42);
  EXPECT_FALSE(value.error());

  const result<int> failed = errc::short_buffer;
  EXPECT_FALSE(failed);
  EXPECT_EQ(failed.error(), make_error_code(errc::short_buffer));

  const result<int> system = std::error_code(EAGAIN, std::system_category());
  EXPECT_EQ(system.error(), std::errc::resource_unavailable_try_again);
}

}  // namespace
}  // namespace actnet
