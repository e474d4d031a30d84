// HTTP hygiene against the real listener and client (timeouts, connection limit, Transfer-Encoding), and huge inputs.
#include <catch2/catch.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <sys/socket.h>

#include "offerd/net/http_client.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
using tcp = asio::ip::tcp;

namespace {
response ok_health(const request& r) {
    return json_response(http::status::ok, r.body().empty() ? std::string(R"({"status":"ok"})") : std::string(r.body()));
}

struct exchange {
    std::string text;         // everything the server sent
    bool closed_by_server = false;  // it closed (or reset) the connection, rather than our patience running out
};

// Writes bytes (possibly none) and reads until the server closes or `patience` runs out.
exchange talk(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds patience = 5s) {
    auto op = [](std::uint16_t p, std::string out, std::chrono::milliseconds limit) -> asio::awaitable<exchange> {
        beast::tcp_stream stream(co_await asio::this_coro::executor);
        stream.expires_after(limit);
        exchange ex;
        if (auto [ec] = co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), p), nothrow); ec) co_return ex;
        if (!out.empty()) co_await asio::async_write(stream, asio::buffer(out), nothrow);
        char buf[4096];
        for (;;) {
            auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), nothrow);
            ex.text.append(buf, n);
            if (ec) {
                ex.closed_by_server = ec != beast::error::timeout;
                break;
            }
        }
        co_return ex;
    };
    return run_bounded(op(port, bytes, patience), patience + 2s);
}

std::size_t count_of(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

server_limits patient_idle() {
    server_limits l;
    l.idle_timeout = std::chrono::milliseconds(60'000);  // longer than any patience below
    l.header_timeout = std::chrono::milliseconds(60'000);
    return l;
}
}  // namespace

TEST_CASE("a connection that sends nothing is closed by the header timeout, not the idle timeout", "[component]") {
    server_limits l = patient_idle();
    l.header_timeout = std::chrono::milliseconds(100);
    fake_upstream server(ok_health, l);
    const auto ex = talk(server.port(), "");
    CHECK(ex.closed_by_server);
    CHECK(ex.text.empty());
}

TEST_CASE("a Transfer-Encoding whose last coding is not chunked gets 400 and the connection is closed", "[component]") {
    fake_upstream server(ok_health, patient_idle());
    const auto ex = talk(server.port(),
                         "POST /member_data HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                         "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(ex.text.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(count_of(ex.text, "HTTP/1.1 ") == 1);  // what followed was not parsed as a next request
    CHECK(ex.text.find("Connection: close") != std::string::npos);
    CHECK(ex.closed_by_server);
    CHECK(server.request_count() == 0);
}

TEST_CASE("a transfer coding other than chunked is answered 501 and the connection is closed", "[component]") {
    fake_upstream server(ok_health, patient_idle());
    const auto ex = talk(server.port(), "POST /member_data HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                                        "5\r\nhello\r\n0\r\n\r\n");
    CHECK(ex.text.rfind("HTTP/1.1 501 ", 0) == 0);
    CHECK(count_of(ex.text, "HTTP/1.1 ") == 1);
    CHECK(ex.closed_by_server);
    CHECK(server.request_count() == 0);
}

TEST_CASE("a chunked request body is still read and answered", "[component]") {
    fake_upstream server(ok_health, patient_idle());
    const auto ex = talk(server.port(), "POST /member_data HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: Chunked\r\n\r\n"
                                        "7\r\n{\"a\":1}\r\n0\r\n\r\n");
    CHECK(ex.text.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(ex.text.find("{\"a\":1}") != std::string::npos);
}

TEST_CASE("beyond max-connections a new connection is answered 503 with Retry-After, then closed", "[component]") {
    server_limits l = patient_idle();
    l.max_connections = 1;
    fake_upstream server(ok_health, l);
    // Hold the one allowed connection: a keep-alive request answered on it proves it was accepted.
    asio::io_context io;
    tcp::socket held(io);
    held.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
    const timeval patience{5, 0};
    REQUIRE(::setsockopt(held.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) == 0);
    asio::write(held, asio::buffer(std::string("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")));
    std::string first;
    char buf[1024];
    while (first.find("{\"status\":\"ok\"}") == std::string::npos) {
        beast::error_code ec;
        const auto n = held.read_some(asio::buffer(buf), ec);
        REQUIRE_FALSE(ec);
        first.append(buf, n);
    }
    const auto turned = talk(server.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(turned.text.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(turned.text.find("Retry-After: 1\r\n") != std::string::npos);
    CHECK(turned.closed_by_server);
    CHECK(server.request_count() == 1);  // the turned-away request never reached a handler
}

TEST_CASE("a trickling upstream fails the call at its timeout although every byte arrives in time for a read", "[component]") {
    raw_peer trickle(raw_peer::mode::trickle);  // a valid answer, one byte per 50 ms: about 2 s in all
    client_limits limits;
    limits.timeout = std::chrono::milliseconds(300);
    auto op = [](std::uint16_t port, client_limits lim) -> asio::awaitable<errc> {
        const auto ex = co_await asio::this_coro::executor;
        http_client client(ex, url{"127.0.0.1", port, ""}, lim);
        const call_options opts{};
        auto res = co_await client.send(http::verb::get, "/member_data/T", std::string(), opts);
        co_return res ? errc::ok : res.error().code;
    };
    CHECK(run_bounded(op(trickle.port(), limits)) == errc::upstream_timeout);
}

TEST_CASE("a trickling member-data is answered 504 within the request deadline, not served late", "[component]") {
    raw_peer trickle(raw_peer::mode::trickle);  // its "[]" would be a valid empty history after ~2 s
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = trickle.url();
        c.orchestrator.upstream.timeout = std::chrono::milliseconds(5'000);
        c.orchestrator.request_deadline = std::chrono::milliseconds(600);
    });
    const auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("TR"));
    CHECK(res.status == 504);
}

TEST_CASE("two transactions of 1e308 points for one member are answered 200", "[component]") {
    test_app app(all_roles);
    const auto port = app.port(role::orchestrator);
    CHECK(post(port, "/member/offer", txn_body("HUGE", "2024-06-01T10:00:00Z", "BUY", 1e308, 1e308)).status == 200);
    CHECK(post(port, "/member/offer", txn_body("HUGE", "2024-06-02T10:00:00Z", "BUY", 1e308, 1e308)).status == 200);
}

TEST_CASE("HEAD of a GET route answers like GET without a body", "[component]") {
    test_app app(all_roles);
    const auto get_answer = get(app.port(role::orchestrator), "/health");
    REQUIRE(get_answer.status == 200);
    const auto ex = talk(app.port(role::orchestrator), "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(ex.text.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(ex.text.find("Content-Length: " + std::to_string(get_answer.body.size()) + "\r\n") != std::string::npos);
    const auto end = ex.text.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    CHECK(ex.text.size() == end + 4);  // no body
    CHECK(ex.closed_by_server);
}

TEST_CASE("a wrong method on a GET route lists HEAD in Allow", "[component]") {
    test_app app(all_roles);
    const auto ex = talk(app.port(role::orchestrator), "DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(ex.text.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(ex.text.find("Allow: GET, HEAD\r\n") != std::string::npos);
}

TEST_CASE("every answer carries a Date header in IMF-fixdate form", "[component]") {
    fake_upstream server(ok_health, patient_idle());
    auto ok = get(server.port(), "/health");
    REQUIRE(ok.status == 200);
    const std::string date = ok.headers["Date"];
    INFO(date);
    REQUIRE(date.size() == 29);
    CHECK(date.substr(date.size() - 4) == " GMT");
    CHECK(date[3] == ',');
    const auto rejected = talk(server.port(), "BROKEN\r\n\r\n");  // answered by the session itself
    CHECK(rejected.text.find("\r\nDate: ") != std::string::npos);
}

TEST_CASE("the Date header names the right day and time", "[unit]") {
    using namespace std::chrono;
    CHECK(http_date(sys_days(2026y / December / 1) + 23h + 0min + 55s) == "Tue, 01 Dec 2026 23:00:55 GMT");
    CHECK(http_date(sys_days(1994y / November / 6) + 8h + 49min + 37s) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(http_date(sys_days(2000y / February / 29) + 0s) == "Tue, 29 Feb 2000 00:00:00 GMT");
}
