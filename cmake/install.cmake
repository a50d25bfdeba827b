# `cmake --install`: the faultline program, the libraries and their headers
# (under include/faultline/), and a CMake package:
#   find_package(faultline REQUIRED)
#   target_link_libraries(app PRIVATE faultline::locking)   # or faultline::core
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/faultline)

install(TARGETS fl_locking fl_core EXPORT faultlineTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/faultline
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/faultline)
if(TARGET faultline)
  install(TARGETS faultline RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(EXPORT faultlineTargets NAMESPACE faultline:: DESTINATION ${FL_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/faultlineConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/faultlineConfig.cmake
  INSTALL_DESTINATION ${FL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/faultlineConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/faultlineConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/faultlineConfigVersion.cmake
        DESTINATION ${FL_CMAKE_DIR})
