#pragma once
/// \file
/// Precondition checks. Violating a precondition is a programmer error, not bad
/// input: where the build has Microsoft GSL (tests and tools define
/// NVGRACE_USE_GSL) the check terminates through gsl::Expects; a consumer that
/// includes nvgrace without GSL gets no check and no dependency.

#if defined(NVGRACE_USE_GSL) && __has_include(<gsl/assert>)
#include <gsl/assert>
#define NVGRACE_EXPECTS(cond) Expects(cond)
#define NVGRACE_ENSURES(cond) Ensures(cond)
#else
#define NVGRACE_EXPECTS(cond) static_cast<void>(0)
#define NVGRACE_ENSURES(cond) static_cast<void>(0)
#endif
