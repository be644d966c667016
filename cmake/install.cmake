# SPDX-License-Identifier: Apache-2.0
# Install rules (cmake --install; the Debian package: debian/rules, scripts/package.sh).
# The systemd unit and the tmpfiles.d file are installed by debhelper from debian/ (links to
# deploy/), where Debian 12 wants them.
include(GNUInstallDirs)

if(TARGET idnoded)
  install(TARGETS idnoded RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()
foreach(prog idnode idnode-bench)
  if(TARGET ${prog})
    install(TARGETS ${prog} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

install(FILES ${CMAKE_SOURCE_DIR}/docs/man/idnode.1 ${CMAKE_SOURCE_DIR}/docs/man/idnode-bench.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/idnode.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/idnoded.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
# bash-completion loads a file by command name: the same file for both
install(FILES ${CMAKE_SOURCE_DIR}/deploy/completion/idnode
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/completion/idnode
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME idnoded)

# The installed configuration: the commented sample with the control socket the unit's
# ExecReload= uses (/run/idnode/control.sock, in its RuntimeDirectory=).
set(HDL_SAMPLE ${CMAKE_SOURCE_DIR}/deploy/idnode.conf.sample)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${HDL_SAMPLE})
file(READ ${HDL_SAMPLE} hdl_conf)
string(REPLACE "\ncontrol_socket = \"\"\n" "\ncontrol_socket = /run/idnode/control.sock\n" hdl_conf
       "${hdl_conf}")
if(NOT hdl_conf MATCHES "\ncontrol_socket = /run/idnode/control.sock\n")
  message(FATAL_ERROR "deploy/idnode.conf.sample: no `control_socket = \"\"` line to set")
endif()
file(WRITE ${CMAKE_BINARY_DIR}/idnode.conf "${hdl_conf}")
install(FILES ${CMAKE_BINARY_DIR}/idnode.conf DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/idnode)
install(FILES ${HDL_SAMPLE} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${CMAKE_SOURCE_DIR}/seeds/demo.jsonl DESTINATION ${CMAKE_INSTALL_DATADIR}/idnode)
# the idnode system user (systemd-sysusers; debian/idnode.postinst falls back to useradd)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/idnode.sysusers DESTINATION lib/sysusers.d
        RENAME idnode.conf)
