module slipway.dev/samples/images/echo

go 1.24.0
