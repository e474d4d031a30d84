// Prometheus exposition numbers (built into component_tests: obs/ lives in offerd_core).
#include <catch2/catch.hpp>

#include "offerd/obs/prometheus.hpp"

using namespace offerd;

TEST_CASE("histogram bucket labels print like the Prometheus clients, without exponents", "[unit]") {
    prom_histogram h;
    h.observe_us(70);
    std::string out;
    h.write(out, "x_seconds", "");
    CHECK(out.find("x_seconds_bucket{le=\"0.00005\"} 0\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"0.0001\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_sum 0.00007\n") != std::string::npos);
    CHECK(out.find("e-0") == std::string::npos);
}

TEST_CASE("large sample values print without an exponent", "[unit]") {
    std::string out;
    write_sample(out, "x_total", "", 1e6);
    CHECK(out == "x_total 1000000\n");
}
