//! Order example service: orders placed as an orchestrated saga.
