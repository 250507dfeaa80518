print("demo: hello from " .. tostring(process.self()))
