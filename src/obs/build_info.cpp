// Build facts fixed at compile time (OFFERD_GIT_REVISION comes from CMake at configure time).
#include "offerd/obs/build_info.hpp"

#include <boost/version.hpp>
#include <dlfcn.h>

#ifndef OFFERD_GIT_REVISION
#define OFFERD_GIT_REVISION "unknown"
#endif

namespace offerd {

namespace {

std::string compiler_text() {
#if defined(__clang__)
    return "Clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#else
    return "unknown";
#endif
}

// Asked of the running process rather than fixed by the build: the tests link glibc's malloc,
// the offerd binary tcmalloc (CMake's OFFERD_MALLOC), and a user may preload another. Every
// gperftools tcmalloc exports tc_version.
std::string malloc_text() { return dlsym(RTLD_DEFAULT, "tc_version") != nullptr ? "tcmalloc" : "system"; }

}  // namespace

const build_info& this_build() {
    static const build_info info{OFFERD_VERSION, OFFERD_GIT_REVISION, compiler_text(),
                                 std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                     std::to_string(BOOST_VERSION % 100),
                                 malloc_text()};
    return info;
}

std::string build_info_labels() {
    const build_info& b = this_build();
    // The values hold no quote or backslash (version numbers, a hex revision, a compiler banner).
    return "version=\"" + b.version + "\",revision=\"" + b.revision + "\",compiler=\"" + b.compiler + "\",boost=\"" + b.boost + "\",malloc=\"" + b.malloc + "\"";
}

}  // namespace offerd
