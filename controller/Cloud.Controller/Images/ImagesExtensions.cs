using Microsoft.Extensions.Options;

namespace Cloud.Controller.Images;

/// <summary>Registration of uploaded images and their distribution to nodes.</summary>
internal static class ImagesExtensions
{
    public static IServiceCollection AddImages(this IServiceCollection services)
    {
        services.AddOptions<ImageOptions>().BindConfiguration(ImageOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ImageOptions>, ImageOptionsValidator>();
        services.AddSingleton<ImageFiles>();
        services.AddSingleton<ImageService>();
        services.AddSingleton<ImageDistribution>();
        services.AddSingleton<ImageCopyPurger>();
        services.AddHostedService(provider => provider.GetRequiredService<ImageCopyPurger>());
        return services;
    }
}
