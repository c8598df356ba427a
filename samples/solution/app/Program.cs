using Sample;

long sum = MathX.Apply(0, 6, 7), difference = MathX.Apply(1, 6, 7), product = MathX.Apply(2, 6, 7);
System.Console.WriteLine($"6+7={sum} 6-7={difference} 6*7={product}");
