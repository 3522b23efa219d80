"""The order controller: creates one Fulfillment per Order, signals it through its spec, mirrors its status."""
