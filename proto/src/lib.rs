//! Wire types shared by the nkpath agent and collector.
