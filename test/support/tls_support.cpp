// TLS test material and an HTTPS call.
#include "tls_support.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "offerd/net/http_client.hpp"
#include "offerd/net/tls.hpp"
#include "process.hpp"

namespace offerd::test {

namespace {
void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/openssl"};  // scripts/deps.sh installs it
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run_process(argv, std::chrono::seconds(30));
    if (r.exit_code != 0) throw std::runtime_error("openssl " + args.front() + " failed (" + std::to_string(r.exit_code) + "): " + r.err);
}

// A P-256 key and a certificate for `sans` signed by the CA in dir.
void leaf(const std::string& dir, const std::string& name, const std::string& cn, const std::string& sans) {
    const std::string base = dir + "/" + name;
    std::ofstream(base + ".ext") << "subjectAltName=" << sans << "\nbasicConstraints=critical,CA:FALSE\n"
                                 << "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", base + ".key", "-out",
             base + ".csr", "-subj", "/CN=" + cn});
    openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key", "-CAcreateserial",
             "-days", "2", "-out", base + ".pem", "-extfile", base + ".ext"});
}

void make_ca(const std::string& dir, const std::string& name, const std::string& cn) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/" + name + ".key",
             "-out", dir + "/" + name + ".pem", "-days", "2", "-subj", "/CN=" + cn});
}
}  // namespace

test_pki::test_pki() {
    char tmpl[] = "/tmp/offerd-test-pki-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    make_ca(dir_, "ca", "offerd test CA");
    make_ca(dir_, "other-ca", "offerd unrelated CA");
    leaf(dir_, "server", "localhost", "DNS:localhost,IP:127.0.0.1");
    leaf(dir_, "other-name", "other.example", "DNS:other.example");
}

test_pki::~test_pki() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

http_result https_call(const std::string& host, std::uint16_t port, const std::string& ca_file, http::verb method,
                       const std::string& target, const std::string& body, std::chrono::milliseconds timeout) {
    auto ctx = make_client_tls_context(ca_file);
    if (!ctx) throw std::runtime_error(ctx.error().detail);
    url u{host, port, ""};
    u.tls = true;
    u.tls_context = *ctx;
    return https_call(u, method, target, body, timeout);
}

http_result https_call(const url& u, http::verb method, const std::string& target, const std::string& body,
                       std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    auto op = [](url where, http::verb m, std::string path, std::string b, std::chrono::milliseconds t) -> asio::awaitable<http_result> {
        client_limits limits;
        limits.timeout = t;
        limits.max_response_bytes = 64u << 20;
        http_client client(co_await asio::this_coro::executor, where, limits);
        auto res = co_await client.send(m, path, std::move(b), call_options{});
        http_result out;
        if (!res) {
            out.error = std::move(res).error();
            co_return out;
        }
        out.status = res->result_int();
        out.body = res->body();
        for (const auto& f : *res) out.headers[std::string(f.name_string())] = std::string(f.value());
        co_return out;
    };
    http_result r = run_bounded(op(u, method, target, body, timeout), timeout + std::chrono::seconds(2));
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    return r;
}

}  // namespace offerd::test
