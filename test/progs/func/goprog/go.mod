module example.com/rtevgo

go 1.19
