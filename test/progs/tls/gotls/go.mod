module rtev.test/gotls

go 1.19
