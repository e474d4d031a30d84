# Installation (`cmake --install`) and the Debian package (`cpack -G DEB`, scripts/package.sh).
#   bin/offerd, share/man/man1/offerd.1, lib/systemd/system/offerd.service, share/doc/offerd/,
#   share/offerd/ (log-schema.json, grafana-dashboard.json, haproxy.cfg),
#   and the default settings: etc/offerd/offerd.conf and etc/default/offerd, which go to /etc
#   itself when the prefix is /usr (the package), else under the prefix.
# The prefix is read when installing, not when configuring, so `cmake --install build --prefix
# DIR` and CPack (prefix /usr, DESTDIR its staging root) both get paths that match: the unit's
# ExecStart and --config name the installed binary and config file.
include(GNUInstallDirs)

install(TARGETS offerd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES docs/offerd.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
# What operators load into their own tools: the log's JSON Schema, the Grafana dashboard, the
# HAProxy configuration of a cluster.
install(FILES docs/log-schema.json deploy/grafana-dashboard.json deploy/haproxy.cfg DESTINATION ${CMAKE_INSTALL_DATADIR}/offerd)

set(OFFERD_SYSTEMD_UNIT_DIR lib/systemd/system CACHE STRING "Directory of offerd.service, relative to the install prefix")
install(CODE "
  set(_offerd_source \"${PROJECT_SOURCE_DIR}\")
  set(_offerd_bindir \"${CMAKE_INSTALL_BINDIR}\")
  set(_offerd_unitdir \"${OFFERD_SYSTEMD_UNIT_DIR}\")
  set(_offerd_stage \"${PROJECT_BINARY_DIR}/install-stage\")
")
install(CODE [[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(_offerd_etc "/etc")
  else()
    set(_offerd_etc "${CMAKE_INSTALL_PREFIX}/etc")
  endif()
  file(READ "${_offerd_source}/deploy/offerd.service" _offerd_unit)
  string(REPLACE "/usr/bin/offerd" "${CMAKE_INSTALL_PREFIX}/${_offerd_bindir}/offerd" _offerd_unit "${_offerd_unit}")
  string(REPLACE "/usr/share/doc/offerd" "${CMAKE_INSTALL_PREFIX}/share/doc/offerd" _offerd_unit "${_offerd_unit}")
  string(REPLACE "/etc/offerd" "${_offerd_etc}/offerd" _offerd_unit "${_offerd_unit}")
  string(REPLACE "/etc/default" "${_offerd_etc}/default" _offerd_unit "${_offerd_unit}")
  file(WRITE "${_offerd_stage}/offerd.service" "${_offerd_unit}")
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/${_offerd_unitdir}" TYPE FILE FILES "${_offerd_stage}/offerd.service")
  file(INSTALL DESTINATION "${_offerd_etc}/offerd" TYPE FILE FILES "${_offerd_source}/deploy/offerd.conf")
  file(INSTALL DESTINATION "${_offerd_etc}/default" TYPE FILE RENAME offerd FILES "${_offerd_source}/deploy/offerd.default")
]])

# --- Debian package: offerd_<version>_amd64.deb ---------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME offerd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time member-offer orchestrator (HTTP, Boost.Asio)")
set(CPACK_PACKAGE_DESCRIPTION "offerd computes a loyalty offer per member transaction: it reads the member's history,
computes features, asks prediction and offer services and persists the transaction. It ships
stand-ins for those services, so one process can run the whole pipeline. Runs as a hardened
systemd service (offerd.service) configured by /etc/offerd/offerd.conf.")
set(CPACK_PACKAGE_CONTACT "offerd maintainers <offerd@localhost>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # offerd_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)  # install with prefix /usr into the staging root: /etc stays /etc
set(CPACK_STRIP_FILES ON)
# Depends: from the binary's shared libraries (Boost 1.81 runtime libs, libssl3, libpq5 once
# linked, libc6, libstdc++6) when dpkg-shlibdeps is there, else the same list written out; and
# procps for /bin/kill, the unit's ExecReload.
find_program(OFFERD_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(OFFERD_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")  # the shared libraries' packages are added to it
else()
  set(_deps "libboost-json1.81.0, libboost-log1.81.0, libboost-program-options1.81.0, libboost-thread1.81.0, libssl3, libc6, libgcc-s1, libstdc++6, procps")
  if(TARGET PostgreSQL::PostgreSQL)
    string(APPEND _deps ", libpq5")
  endif()
  if(OFFERD_LINKED_MALLOC STREQUAL "tcmalloc")
    string(APPEND _deps ", libtcmalloc-minimal4")
  endif()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${_deps}")
endif()
# Debian 12's systemd helpers for the maintainer scripts (deb-systemd-helper, -invoke).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_BINARY_DIR}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
file(WRITE ${PROJECT_BINARY_DIR}/debian/conffiles "/etc/offerd/offerd.conf\n/etc/default/offerd\n")
include(CPack)
