//! Epitaph query language (grows in [query]).
