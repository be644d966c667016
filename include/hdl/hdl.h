/* SPDX-License-Identifier: Apache-2.0 */
/** \file \brief Umbrella header of the idnode client library. */
#ifndef HDL_HDL_H
#define HDL_HDL_H
#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "hdl/client.h"
#include "hdl/auth.h"
#endif
