//! Payment example service: a simulated payment processor with fault injection.
