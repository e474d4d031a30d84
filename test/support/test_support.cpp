// Test support implementation.
#include "test_support.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/json/parse.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "offerd/codec/json_writer.hpp"
#include "offerd/domain/csv.hpp"
#include "offerd/net/http_client.hpp"
#include "process.hpp"

namespace offerd::test {

using tcp = asio::ip::tcp;

http_result http_call(std::uint16_t port, http::verb method, const std::string& target, const std::string& body,
                      const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    auto op = [&]() -> asio::awaitable<http_result> {
        beast::tcp_stream stream(co_await asio::this_coro::executor);
        stream.expires_after(timeout);
        http_result out;
        auto [cec] = co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), nothrow);
        if (cec) {
            out.error = fail(errc::upstream_unavailable, cec.message());
            co_return out;
        }
        request req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        for (const auto& [k, v] : headers) req.set(k, v);
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, req, nothrow);
        if (wec) {
            out.error = fail(errc::upstream_unavailable, wec.message());
            co_return out;
        }
        beast::flat_buffer buf;
        http::response_parser<http::string_body> parser;
        parser.body_limit(64u << 20);
        auto [rec, rn] = co_await http::async_read(stream, buf, parser, nothrow);
        if (rec) {
            out.error = fail(rec == beast::error::timeout ? errc::upstream_timeout : errc::upstream_unavailable, rec.message());
            co_return out;
        }
        response res = parser.release();
        out.status = res.result_int();
        out.body = res.body();
        for (const auto& f : res) out.headers[std::string(f.name_string())] = std::string(f.value());
        co_return out;
    };
    http_result r = run_bounded(op(), timeout + 2s);
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    return r;
}

std::string raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds timeout) {
    auto op = [&]() -> asio::awaitable<std::string> {
        beast::tcp_stream stream(co_await asio::this_coro::executor);
        stream.expires_after(timeout);
        auto [cec] = co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), nothrow);
        if (cec) co_return std::string();
        co_await asio::async_write(stream, asio::buffer(bytes), nothrow);
        std::string out;
        char buf[4096];
        for (;;) {
            auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), nothrow);
            out.append(buf, n);
            if (ec) break;
        }
        co_return out;
    };
    return run_bounded(op(), timeout + 2s);
}

fake_upstream::fake_upstream(function fn, const server_limits& limits, std::uint16_t port, std::shared_ptr<tls_context> tls)
    : fake_upstream(async_function([fn = std::move(fn)](const request& r) -> asio::awaitable<response> { co_return fn(r); }),
                    limits, port, std::move(tls)) {}

fake_upstream::fake_upstream(async_function fn, const server_limits& limits, std::uint16_t port, std::shared_ptr<tls_context> tls)
    : log_(log_config{"/dev/null", log_level::off}), fn_(std::move(fn)) {
    auto r = std::make_shared<router>();
    auto h = [this](request_context& ctx) -> asio::awaitable<response> {
        {
            std::lock_guard lock(mutex_);
            seen_.push_back(ctx.req);
        }
        co_return co_await fn_(ctx.req);
    };
    for (auto verb : {http::verb::get, http::verb::post}) {
        for (const char* p : {"/member_data", "/member_data/{id}", "/ml/ats/predict", "/ml/resp/predict", "/offer/assign", "/health"}) {
            r->add(verb, p, h);
            r->add(verb, std::string("/api") + p, h);  // as a gateway publishing them under a base path would
        }
    }
    const worker_context workers[] = {{ctx_.get_executor()}};
    server_ = std::make_unique<http_server>("fake", workers, "127.0.0.1", port, r, limits, log_, std::move(tls));
    server_->start();
    thread_ = std::thread([this] { ctx_.run(); });
}

fake_upstream::~fake_upstream() {
    server_->stop();
    ctx_.stop();
    thread_.join();
}

response relay(std::uint16_t port, const request& req, const std::string& target) {
    auto r = http_call(port, req.method(), target, req.body(), {{"Idempotency-Key", std::string(req["Idempotency-Key"])}});
    response out{static_cast<http::status>(r.status), 11};
    out.body() = r.body;
    out.set(http::field::content_type, "application/json");
    if (auto it = r.headers.find("Idempotent-Replayed"); it != r.headers.end()) out.set("Idempotent-Replayed", it->second);
    out.prepare_payload();
    return out;
}

std::vector<request> fake_upstream::requests() const {
    std::lock_guard lock(mutex_);
    return seen_;
}

std::size_t fake_upstream::request_count() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
}

raw_peer::raw_peer(mode m) : acceptor_(ctx_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    // Parameters, not captures: the lambda object is gone once co_spawn returns.
    auto loop = [](raw_peer* self, mode m) -> asio::awaitable<void> {
        for (;;) {
            auto [ec, sock] = co_await self->acceptor_.async_accept(nothrow);
            if (ec) co_return;
            auto s = std::make_shared<tcp::socket>(std::move(sock));
            if (m == mode::hang) {
                self->held_.push_back(s);
                continue;
            }
            char buf[4096];
            co_await s->async_read_some(asio::buffer(buf), nothrow);
            if (m == mode::garbage) {
                static const std::string junk = "this is not HTTP\r\n\r\n";
                co_await asio::async_write(*s, asio::buffer(junk), nothrow);
            } else if (m == mode::trickle) {
                static const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
                asio::steady_timer pause(self->ctx_);
                for (char c : answer) {
                    pause.expires_after(std::chrono::milliseconds(50));
                    co_await pause.async_wait(nothrow);
                    auto [ec2, n2] = co_await asio::async_write(*s, asio::buffer(&c, 1), nothrow);
                    if (ec2) break;
                }
            } else {
                if (m == mode::reset_mid_response) {
                    static const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[{\"memberId\":";
                    co_await asio::async_write(*s, asio::buffer(head), nothrow);
                }
                s->set_option(asio::socket_base::linger(true, 0));
            }
            beast::error_code ignored;
            s->close(ignored);
        }
    };
    asio::co_spawn(ctx_, loop(this, m), asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
}

raw_peer::~raw_peer() {
    ctx_.stop();
    thread_.join();
}

double metric_sample(const std::string& scrape, const std::string& series) {
    const std::size_t at = scrape.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    const std::size_t eol = scrape.find('\n', at + 1);
    return std::stod(scrape.substr(at + series.size() + 2, eol - at - series.size() - 2));
}

std::uint16_t closed_port() {
    asio::io_context ctx;
    tcp::acceptor a(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

test_app::test_app(std::uint8_t roles, const std::function<void(app_config&)>& tweak) {
    char path[] = "/tmp/offerd-test-log-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    log_path_ = path;
    cfg_.roles = roles;
    cfg_.orchestrator_port = cfg_.member_data_port = cfg_.prediction_port = cfg_.offer_engine_port = 0;
    cfg_.threads = 2;
    // Ordinary scheduling: test processes run in parallel (ctest -j), some under sanitizers whose
    // runtimes spin on internal locks. The real-time default has its own test and the e2e tests.
    cfg_.realtime_priority = 0;
    cfg_.throughput_interval = std::chrono::milliseconds(0);
    cfg_.ready_interval = std::chrono::milliseconds(0);  // no background probes hitting the fakes
    cfg_.shutdown_timeout = std::chrono::milliseconds(2000);
    cfg_.log = log_config{log_path_, log_level::info};
    if (tweak) tweak(cfg_);
    log_ = std::make_unique<logger>(cfg_.log);
    rt_ = std::make_unique<runtime>(cfg_, *log_);
    rt_->start();
}

test_app::~test_app() {
    rt_->shutdown();
    rt_.reset();
    log_.reset();
    std::remove(log_path_.c_str());
}

std::vector<std::string> test_app::log_lines() {
    log_->flush();
    std::ifstream in(log_path_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::vector<boost::json::object> test_app::events(std::string_view name) {
    std::vector<boost::json::object> out;
    for (const auto& line : log_lines()) {
        auto v = boost::json::parse(line).as_object();
        if (v.at("event") == boost::json::string_view(name.data(), name.size())) out.push_back(std::move(v));
    }
    return out;
}

std::vector<transaction> read_valid_rows(const std::string& path, std::size_t* malformed) {
    const std::string text = read_file(path);
    csv_reader reader(text);
    csv_record rec;
    failure err;
    if (!reader.next(rec, err)) throw std::runtime_error("no CSV header in " + path);
    const auto cols = map_csv_header(rec.fields);
    if (!cols) throw std::runtime_error(cols.error().detail);
    std::vector<transaction> rows;
    std::size_t bad = 0;
    while (reader.next(rec, err)) {
        if (auto t = csv_row_to_transaction(rec, *cols)) rows.push_back(std::move(t).value());
        else ++bad;
    }
    if (malformed) *malformed = bad;
    return rows;
}

std::string txn_body(const std::string& member, const std::string& ts, const std::string& type, double points,
                     double revenue) {
    std::string out;
    json_writer(out)
        .begin_object()
        .member("memberId", std::string_view(member))
        .member("lastTransactionUtcTs", std::string_view(ts))
        .member("lastTransactionType", std::string_view(type))
        .member("lastTransactionPointsBought", points)
        .member("lastTransactionRevenueUsd", revenue)
        .end_object();
    return out;
}

}  // namespace offerd::test
